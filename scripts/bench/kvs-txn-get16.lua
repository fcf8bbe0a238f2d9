-- wrk: POST /txn of 16 gets of random string keys among the 100k kvs-get.lua
-- reads (no compare: a read of 16 keys at one moment of the store). Each
-- answer carries 16 keys, so keys/s is 16 times wrk's requests/s.
local keys = 16
local ops = {}
math.randomseed(os.time())
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

request = function()
  for i = 1, keys do
    ops[i] = string.format('{"op":"get","type":"str","key":"k%015d"}', math.random(0, 99999))
  end
  return wrk.format(nil, "/kvs/v1-0-0/txn", nil, '{"success":[' .. table.concat(ops, ",") .. "]}")
end
