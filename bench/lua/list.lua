-- GET /items/?limit=20: the first page of the list, as a client scrolling a catalogue starts.
request = function()
  return wrk.format("GET", "/items/?limit=20")
end
