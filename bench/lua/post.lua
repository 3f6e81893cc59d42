-- POST /items/ with a small JSON body; every request creates a row.
local headers = { ["Content-Type"] = "application/json" }
local n = 0
request = function()
  n = n + 1
  local body = '{"name":"bench item ' .. n .. '","description":"made by wrk","price":' ..
      (n % 1000) .. '.25,"in_stock":true}'
  return wrk.format("POST", "/items/", headers, body)
end
