-- PATCH /items/{id} of a random seeded row, changing its price (no If-Match).
local rows = tonumber(os.getenv("BENCH_ROWS") or "10000")
local headers = { ["Content-Type"] = "application/json" }
math.randomseed(os.time() + 1)
request = function()
  local body = '{"price":' .. math.random(1, 99999) .. '.5}'
  return wrk.format("PATCH", "/items/" .. math.random(1, rows), headers, body)
end
