-- wrk: GET of a random string key among 100k (16 bytes: k and 15 digits,
-- as `kvs-bench --key-size 16 --prefill` writes them) from kvs-server.
math.randomseed(os.time())

request = function()
  return wrk.format("GET", string.format("/kvs/v1-0-0/str/k%015d", math.random(0, 99999)))
end
