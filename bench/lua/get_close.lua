-- GET /items/{id} on a new connection each time (Connection: close): exercises accept().
local rows = tonumber(os.getenv("BENCH_ROWS") or "10000")
local headers = { ["Connection"] = "close" }
math.randomseed(os.time() + 2)
request = function()
  return wrk.format("GET", "/items/" .. math.random(1, rows), headers)
end
