-- wrk: SET of a random key among 100k (16 bytes, as kvs-bench makes them)
-- to a 32-byte value, through webdis's GET /SET/key/value.
local value = string.rep("v", 32)
math.randomseed(os.time())

request = function()
  return wrk.format("GET", string.format("/SET/k%015d/%s", math.random(0, 99999), value))
end
