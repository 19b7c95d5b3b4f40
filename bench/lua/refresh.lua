-- Refresh-token rotation: every response carries the next refresh token, which goes back
-- into the pool for the next request. The pool starts with the tokens in the file given
-- after "--" (one per line): one per connection, plus one for the request wrk builds once
-- at start-up to check the script and never sends. Authorization comes from -H.
local pool = {}

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then pool[#pool + 1] = line end
  end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
end

function request()
  -- An empty pool means a failed rotation: the server refuses "none" and wrk counts a
  -- non-2xx response (resending a spent token would revoke its whole family).
  local token = table.remove(pool) or "none"
  return wrk.format(nil, nil, nil, "grant_type=refresh_token&refresh_token=" .. token)
end

function response(status, headers, body)
  local token = body:match('"refresh_token"%s*:%s*"([^"]+)"')
  if token then pool[#pool + 1] = token end
end
