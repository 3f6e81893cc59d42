-- GET /items/{id}, ids drawn uniformly from the seeded rows (BENCH_ROWS).
local rows = tonumber(os.getenv("BENCH_ROWS") or "10000")
math.randomseed(os.time())
request = function()
  return wrk.format("GET", "/items/" .. math.random(1, rows))
end
