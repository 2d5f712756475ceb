-- The run loop: logs, checkpoints, bit-exact resume, NaN stop, progress output.
local T = require "harness"
local utils = require "skd.utils"

local dir = os.tmpname(); os.remove(dir); skd.mkdir(dir)

-- A tiny model with the module interface the loop needs (state_dict/load_state_dict), so
-- this test does not depend on skd.nn.
local function tiny_model()
  local m = {w = skd.randn(4, 3):requires_grad(), b = skd.zeros(3):requires_grad()}
  function m:parameters() return {self.w, self.b} end
  function m:state_dict() return {w = self.w, b = self.b} end
  function m:load_state_dict(sd)
    for k, t in pairs(sd) do
      if not self[k] then error("unexpected " .. k) end
      skd.no_grad(function() self[k]:copy_(t) end)
    end
  end
  return m
end

local function run(iterations, stop_at, resume, name)
  skd.manual_seed(7)
  local m = tiny_model()
  local opt = skd.optim.sgd(m, {lr = 0.1, momentum = 0.9})
  local ckpath = dir .. "/" .. name .. ".safetensors"
  local r = skd.train.run{
    name = name, iterations = iterations, images_per_step = 4, quiet = true,
    lr = function(it) return skd.optim.poly(0.1, it - 1, iterations) end,
    step = function(it, lr)
      if stop_at and it > stop_at then error("killed", 0) end
      opt:set_lr(lr)
      opt:zero_grad()
      local x = skd.randn(4, 4)     -- draws from the RNG: resume must restore it
      local loss = ((skd.matmul(x, m.w) + m.b):tanh() - 0.5):pow(2):mean()
      loss:backward()
      opt:step()
      return {loss = loss:item()}
    end,
    log = dir .. "/" .. name .. ".jsonl",
    checkpoint = {path = ckpath, every = 3, parts = {model = m, optimizer = opt}},
    resume = resume,
  }
  return m, r
end

T.test("a run killed mid-way and resumed ends with exactly the same weights", function()
  local full = run(10, nil, false, "full")
  pcall(run, 10, 7, false, "killed")              -- dies after the checkpoint at 6
  local resumed, r = run(10, nil, true, "killed")
  T.eq(r.iterations, 10)
  T.eq(T.maxdiff(resumed.w, full.w), 0, "w bit-exact")
  T.eq(T.maxdiff(resumed.b, full.b), 0, "b bit-exact")
  -- the log has each iteration once, in order
  local its = {}
  for line in utils.read_file(dir .. "/killed.jsonl"):gmatch("[^\n]+") do
    its[#its + 1] = tonumber(line:match('"it":(%d+)'))
  end
  T.eq(#its, 10)
  for i = 1, 10 do T.eq(its[i], i) end
end)

T.test("a NaN loss term stops the run naming the term and the iteration", function()
  local err = T.raises(function()
    skd.train.run{name = "nan", iterations = 5, quiet = true,
      step = function(it) return {ce = 1.0, pa = it == 3 and 0 / 0 or 0.5} end}
  end, "'pa'", "iteration 3")
  T.ok(err:find("nan", 1, true) or err:find("-nan", 1, true), err)
end)

T.test("json encoding is deterministic and valid for non-finite numbers", function()
  T.eq(utils.json({b = 1, a = {1, 2.5, "x"}, c = 0 / 0}), '{"a":[1,2.5,"x"],"b":1,"c":null}')
end)

T.test("bad settings are clear errors", function()
  T.raises(function() skd.train.run{iterations = 0, step = function() end} end, "iterations")
  T.raises(function() skd.train.run{iterations = 2} end, "step")
end)

T.done()
