-- POST the form body given after "--" on every request; Authorization comes from -H.
function init(args)
  wrk.method = "POST"
  wrk.body = args[1]
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
end
