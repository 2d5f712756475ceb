-- bench/bench_vs_torch.lua — the skd side of bench/compare.sh (issue 7): the same cases as
-- bench/torch_ref.py, through the library (skd.models, skd.losses, skd.optim, skd.distill),
-- one case per process so that the peak resident memory (VmHWM) belongs to that case alone.
--
--   ./skd-lua bench/bench_vs_torch.lua student  WIDTH HxW BATCH RUNS   forward / backward / SGD update
--   ./skd-lua bench/bench_vs_torch.lua teacher  DEPTH HxW BATCH RUNS   frozen (BN-folded) no-grad forward
--   ./skd-lua bench/bench_vs_torch.lua distill  TDEPTH WIDTH HxW BATCH RUNS   skd.distill iterations
--   ./skd-lua bench/bench_vs_torch.lua pairwise HxW CS CT RUNS         L_pa at β = 1 (Gram): value + backward
--   ./skd-lua bench/bench_vs_torch.lua layers   WIDTH HxW BATCH RUNS   forward time of every conv of the student
--                                                                      (WIDTH r50 or r101: of the frozen teacher)
--   ./skd-lua bench/bench_vs_torch.lua sgemm    N RUNS                 BLIS sgemm N×N×N through skd.matmul
--
-- Output: "R side=skd case=<case> metric=<m> median=<s> min=<s> n=<runs>" (seconds, after one
-- warm-up run) and "R side=skd case=<case> metric=<m> value=<v>"; compare.sh pairs them with
-- torch_ref.py's lines and prints ratios. SKD_BENCH_BUDGET (seconds, 0 = none) stops a case's
-- timed runs early once they have used that much time and at least 3 are done. Run with no
-- arguments (as bench/run.sh does) it only says where the comparison is.
local case_name = arg[1]

local function usage()
  print("bench_vs_torch.lua: the skd side of bench/compare.sh (skd vs PyTorch, issue 7); "
        .. "run `bash bench/compare.sh [--quick|--full]` for the table")
end

local NUM_CLASSES = 19
local BUDGET = tonumber(os.getenv("SKD_BENCH_BUDGET") or "0") or 0
local MIN_RUNS = 3

local function status_kib(field)
  local f = io.open("/proc/self/status")
  if not f then return -1 end
  local text = f:read("a")
  f:close()
  return tonumber(text:match(field .. ":%s*(%d+)")) or -1
end

local BASE_KIB = status_kib("VmRSS") -- the interpreter with skd loaded, before any case

local function median(t)
  local s = {}
  for i, v in ipairs(t) do s[i] = v end
  table.sort(s)
  local n = #s
  if n == 0 then return 0 end
  return n % 2 == 1 and s[(n + 1) // 2] or 0.5 * (s[n // 2] + s[n // 2 + 1])
end

local function emit_times(case, metric, times)
  print(string.format("R side=skd case=%s metric=%s median=%.6f min=%.6f n=%d", case, metric,
                      median(times), math.min(table.unpack(times)), #times))
  io.stdout:flush()
end

local function emit_value(case, metric, value)
  print(string.format("R side=skd case=%s metric=%s value=%s", case, metric, tostring(value)))
  io.stdout:flush()
end

-- The 1-minute load average as the case ends: how much the machine was shared meanwhile.
local function load_average()
  local f = io.open("/proc/loadavg")
  if not f then return -1 end
  local l = f:read("l")
  f:close()
  return tonumber(l:match("^(%S+)")) or -1
end

local function emit_memory(case)
  emit_value(case, "hwm_kib", status_kib("VmHWM"))
  -- tensor storage at its highest: needed by the computation, and held with the cache
  local m = skd.memory()
  emit_value(case, "peak_in_use_kib", m.peak_in_use // 1024)
  emit_value(case, "peak_held_kib", m.peak_held // 1024)
  emit_value(case, "base_kib", BASE_KIB)
  emit_value(case, "threads", skd.threads())
  emit_value(case, "load", load_average())
end

local function size_of(s)
  local h, w = s:match("^(%d+)x(%d+)$")
  if not h then error("expected a size HxW, got " .. tostring(s), 0) end
  return tonumber(h), tonumber(w)
end

-- Runs fn(it) for it = 0 (warm-up, not recorded) .. runs; fn returns a table of named
-- durations (wall seconds); rec.cpu gets the process CPU seconds (all threads) of each run,
-- a second reading that a loaded machine disturbs less than wall time. Stops early (≥
-- MIN_RUNS recorded) once the recorded runs passed BUDGET seconds.
local function repeat_runs(runs, fn, names)
  local rec = {}
  for _, k in ipairs(names) do rec[k] = {} end
  rec.cpu = {}
  local spent = 0
  for it = 0, runs do
    local c0 = os.clock()
    local d = fn(it)
    d.cpu = os.clock() - c0
    if it > 0 then
      table.insert(rec.cpu, d.cpu)
      for _, k in ipairs(names) do table.insert(rec[k], d[k]) end
      spent = spent + (d.total or d[names[1]])
      if BUDGET > 0 and it >= MIN_RUNS and spent > BUDGET then break end
    end
  end
  return rec
end

-- ---------------------------------------------------------------- networks

local function student(width)
  return skd.models.pspnet{backbone = {depth = 18, width = width, deep_stem = true, output_stride = 8},
    num_classes = NUM_CLASSES, head_channels = 128, aux = true}
end

local function teacher(depth)
  return skd.models.pspnet{backbone = {depth = depth, width = 1.0, deep_stem = true, output_stride = 8},
    num_classes = NUM_CLASSES, head_channels = 512, aux = true}
end

-- A random batch: images N(0, 1), labels uniform over the classes with the first 4 rows
-- ignored (255), as torch_ref.py makes them.
local function inputs(batch, h, w)
  local x = skd.randn(batch, 3, h, w)
  local y = (skd.rand(batch, h, w) * NUM_CLASSES):int()
  y:narrow(2, 1, 4):fill_(255)
  return x, y
end

local function sgd(net)
  return skd.optim.sgd(net, {lr = 0.01, momentum = 0.9, weight_decay = 5e-4})
end

-- ---------------------------------------------------------------- cases

local cases = {}

-- 1. The student's training step: forward (with the CE + 0.4·aux CE loss), backward, SGD
--    update (step + zero_grad).
function cases.student(width, size, batch, runs)
  local h, w = size_of(size)
  local case = string.format("student/w%s/%s/b%d", width, size, batch)
  local net = student(tonumber(width))
  net:train()
  local opt = sgd(net)
  local L = skd.losses
  local x, y = inputs(batch, h, w)
  local names = {"fwd", "bwd", "update", "total"}
  local rec = repeat_runs(runs, function()
    local t0 = skd.clock()
    local out = net(x)
    local loss = L.cross_entropy(out.logits, y) + L.cross_entropy(out.aux, y) * 0.4
    local t1 = skd.clock()
    loss:backward()
    local t2 = skd.clock()
    opt:step()
    opt:zero_grad()
    local t3 = skd.clock()
    return {fwd = t1 - t0, bwd = t2 - t1, update = t3 - t2, total = t3 - t0}
  end, names)
  for _, k in ipairs(names) do emit_times(case, k, rec[k]) end
  emit_times(case, "cpu", rec.cpu)
  emit_value(case, "params", net:num_parameters())
  emit_memory(case)
end

-- 2. Teacher inference: frozen (eval, no grad, BatchNorm folded into the convolutions).
function cases.teacher(depth, size, batch, runs)
  local h, w = size_of(size)
  local case = string.format("teacher/r%s/%s/b%d", depth, size, batch)
  local net = teacher(tonumber(depth))
  net:freeze()
  local x = skd.randn(batch, 3, h, w)
  local rec = repeat_runs(runs, function()
    local t0 = skd.clock()
    skd.no_grad(function() return net(x) end)
    return {fwd = skd.clock() - t0}
  end, {"fwd"})
  emit_times(case, "fwd", rec.fwd)
  emit_times(case, "cpu", rec.cpu)
  emit_value(case, "params", net:num_parameters())
  emit_memory(case)
end

-- 3. One full distillation step, as skd.distill runs it (method.md §0, default weights:
--    ce 1, aux 0.4, pi 10, pa 10 (β = 2, avg), ho 0.1 with the "image" critic, λ_gp 10).
--    The phases are read off the library's own calls: the loader's call starts an iteration,
--    the teacher's forward and the student optimiser's step end the first two phases, and
--    on_step (every = 1) comes after the critic's step.
function cases.distill(tdepth, width, size, batch, runs)
  local h, w = size_of(size)
  local case = string.format("distill/r%s-w%s/%s/b%d", tdepth, width, size, batch)
  local t_net = teacher(tonumber(tdepth))
  local s_net = student(tonumber(width))
  local critic = skd.models.discriminator{num_classes = NUM_CLASSES, condition = "image"}
  local x, y = inputs(batch, h, w)
  local opt = sgd(s_net)
  local marks = {}
  local function mark(k) marks[k] = skd.clock() end
  local t_forward = t_net.forward
  rawset(t_net, "forward", function(self, ...)
    local r = table.pack(t_forward(self, ...))
    mark("teacher")
    return table.unpack(r, 1, r.n)
  end)
  local o_step = opt.step
  opt.step = function(self, ...) o_step(self, ...); mark("student") end
  local names = {"teacher", "student", "critic", "total", "cpu"}
  local rec = {}
  for _, k in ipairs(names) do rec[k] = {} end
  local it, spent = 0, 0
  local STOP = "bench_vs_torch: distill budget reached"
  local ok, err = pcall(skd.distill, {
    teacher = t_net, student = s_net, critic = critic, optimizer = opt, quiet = true,
    iterations = runs + 1, batch = batch, every = 1,
    loader = function()
      -- the budget rule of repeat_runs; raised before the iteration starts, so no step is cut
      if BUDGET > 0 and #rec.total >= MIN_RUNS and spent > BUDGET then error(STOP, 0) end
      mark("start"); marks.cpu = os.clock()
      return {image = x, label = y}
    end,
    on_step = function()
      mark("done")
      it = it + 1
      if it > 1 then
        table.insert(rec.teacher, marks.teacher - marks.start)
        table.insert(rec.student, marks.student - marks.teacher)
        table.insert(rec.critic, marks.done - marks.student)
        table.insert(rec.total, marks.done - marks.start)
        table.insert(rec.cpu, os.clock() - marks.cpu)
        spent = spent + (marks.done - marks.start)
      end
    end,
  })
  if not ok and not tostring(err):find(STOP, 1, true) then error(err, 0) end
  for _, k in ipairs(names) do emit_times(case, k, rec[k]) end
  emit_memory(case)
end

-- 4. The pair-wise loss at β = 1 on h×w nodes (B = 1): skd.losses.pairwise (C×C Gram
--    matrices, never N×N), value + backward to the student features.
function cases.pairwise(size, cs, ct, runs)
  local h, w = size_of(size)
  local case = string.format("pairwise/%s/c%s-%s", size, cs, ct)
  local fs = skd.relu(skd.randn(1, tonumber(cs), h, w))
  local ft = skd.relu(skd.randn(1, tonumber(ct), h, w))
  local value
  local rec = repeat_runs(runs, function()
    local x = fs:detach():requires_grad()
    local t0 = skd.clock()
    local l = skd.losses.pairwise(x, ft, {beta = 1})
    l:backward()
    local dt = skd.clock() - t0
    value = l:item()
    return {total = dt}
  end, {"total"})
  emit_times(case, "total", rec.total)
  emit_times(case, "cpu", rec.cpu)
  emit_value(case, "value", string.format("%.7g", value))
  emit_memory(case)
end

-- 5. The forward time of every convolution of the student in a training-mode forward
--    (autograd on), with its direct-convolution FLOPs (2·MACs, padding taps included).
function cases.layers(width, size, batch, runs)
  local h, w = size_of(size)
  -- WIDTH a number: the student in training mode; "r50", "r101": the frozen teacher, no grad
  local depth = width:match("^r(%d+)$")
  local case = string.format("layers/%s%s/%s/b%d", depth and "" or "w", width, size, batch)
  local net
  if depth then
    net = teacher(tonumber(depth))
    net:freeze()
  else
    net = student(tonumber(width))
    net:train()
  end
  local nn = skd.nn
  local names, order = {}, {}
  for name, m in net:named_modules() do names[m] = name end
  local times, info = {}, {}
  local recording = false
  -- every convolution, whether through its forward or, in a frozen ResNet block, through the
  -- fused conv → folded BN → ReLU (the time then includes that pass)
  local forward, forward_folded = nn.Conv2d.forward, nn.Conv2d.forward_folded_relu
  local function timed(inner) return function(self, x, ...)
    local t0 = skd.clock()
    local out = inner(self, x, ...)
    if recording then
      local name = names[self] or "?"
      if not times[name] then times[name] = {}; order[#order + 1] = name end
      table.insert(times[name], skd.clock() - t0)
      if not info[name] then
        local s = out:size()
        info[name] = {flops = 2 * self:macs(out) * s[1],
          desc = string.format("%dx%d%s%s,%d->%d,out%dx%d", self.kernel_size[1], self.kernel_size[2],
            self.stride[1] > 1 and (",s" .. self.stride[1]) or "",
            self.dilation[1] > 1 and (",d" .. self.dilation[1]) or "",
            self.in_channels, self.out_channels, s[3], s[4])}
      end
    end
    return out
  end end
  nn.Conv2d.forward, nn.Conv2d.forward_folded_relu = timed(forward), timed(forward_folded)
  local x = inputs(batch, h, w)
  for it = 0, runs do
    recording = it > 0
    if depth then skd.no_grad(function() return net(x) end) else net(x) end
  end
  nn.Conv2d.forward, nn.Conv2d.forward_folded_relu = forward, forward_folded
  for _, name in ipairs(order) do
    emit_times(case, "conv:" .. name, times[name])
    emit_value(case, "flops:" .. name, string.format("%.0f", info[name].flops))
    emit_value(case, "desc:" .. name, info[name].desc)
  end
end

-- The practical peak: one N×N×N sgemm (BLIS) through skd.matmul.
function cases.sgemm(n, runs)
  n = tonumber(n)
  local a, b = skd.randn(n, n), skd.randn(n, n)
  local rec = repeat_runs(runs, function()
    local t0 = skd.clock()
    skd.matmul(a, b)
    return {total = skd.clock() - t0}
  end, {"total"})
  local case = "sgemm/" .. n
  emit_times(case, "total", rec.total)
  emit_value(case, "flops", string.format("%.0f", 2 * n ^ 3))
  emit_value(case, "threads", skd.threads())
end

if not case_name then usage(); return end
local fn = cases[case_name]
if not fn then usage(); error("unknown case '" .. tostring(case_name) .. "'", 0) end
local args = {}
for i = 2, #arg do args[#args + 1] = arg[i]:match("^%d+$") and math.tointeger(tonumber(arg[i])) or arg[i] end
fn(table.unpack(args))
