-- bench/bench_pairwise.lua — the pair-wise loss (value + backward, method.md §2), the Gram way
-- against the materialised N×N, for N = 32×64, 64×128, 128×256 nodes (β = 1 on maps of those
-- sizes) and C = 128 / 512: time, peak memory and the values' agreement, side by side.
--
--   ./skd-lua bench/bench_pairwise.lua            the table (each case in its own process)
--   ./skd-lua bench/bench_pairwise.lua --case WAY H W C    one case (what the table runs)
--
-- Ways: "gram" is skd.losses.pairwise (the fused C kernel of core/affinity.c: C×C Gram
-- matrices, never N×N); "gram-ops" is the same identity from engine ops (matmul autograd on
-- B×C×N), the alternative the kernel was measured against; "nxn" materialises both N×N
-- affinities (skd.losses.affinity) and differentiates through them; "local" is the banded
-- α = 1 loss (a different loss, for scale). Peak memory is the process's high-water mark
-- (VmHWM) above its resident size just before the case, so each case runs in a fresh process
-- with glibc's mmap threshold fixed (large blocks go back to the kernel when freed) and the
-- engine's block cache emptied. Time is wall-clock, the best of two runs for the small cases
-- (one for the large), and the process's CPU time beside it: on a shared machine the wall
-- time swings with the load, the CPU time much less (on an oversubscribed machine run it with
-- SKD_THREADS=1: waiting OpenMP/BLIS threads spin and inflate both). The Gram way's peak is
-- the B×C×N node tensors and their gradients (the features' own size) plus 3 C×C matrices.
-- Inputs are post-ReLU features with a teacher correlated to the student, as real ones are.
local L = skd.losses

local SIZES = {{32, 64}, {64, 128}, {128, 256}}
local CHANNELS = {128, 512}
local WAYS = {"gram", "gram-ops", "nxn", "local"}
local NXN_CAP = 2.5 * 2 ^ 30 -- bytes: skip the materialised way when its matrices would pass this
local NXN_MATRICES = 8        -- N×N float tensors alive at its peak (measured: 2 GiB at N = 8192)

local function status_kib(field)
  local f = io.open("/proc/self/status")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return tonumber(text:match(field .. ":%s*(%d+)"))
end

local function inputs(h, w, C)
  skd.manual_seed(1)
  local pre = skd.randn(1, C, h, w)
  local fs = skd.relu(pre)
  local ft = skd.relu(pre * 0.8 + skd.randn(1, C, h, w) * 0.6)
  return fs, ft
end

local function gram_ops(fs, ft)
  local s = L.nodes(fs, {beta = 1})
  local t = skd.no_grad(L.nodes, ft, {beta = 1})
  local N = s:size(3)
  local gss = skd.matmul(s, s:transpose(2, 3))
  local gst = skd.matmul(s, t:transpose(2, 3))
  local gtt = skd.no_grad(function() return skd.matmul(t, t:transpose(2, 3)) end)
  return ((gss * gss):sum() - (gst * gst):sum() * 2 + (gtt * gtt):sum()) / (N * N)
end

local function nxn(fs, ft)
  local As = L.affinity(fs, {beta = 1})
  local At = skd.no_grad(L.affinity, ft, {beta = 1})
  local d = As - At
  return (d * d):mean()
end

local LOSS = {
  gram = function(fs, ft) return L.pairwise(fs, ft, {beta = 1}) end,
  ["gram-ops"] = gram_ops,
  nxn = nxn,
  ["local"] = function(fs, ft) return L.pairwise(fs, ft, {beta = 1, alpha = 1}) end,
}

-- One case in this process: prints "time peak_bytes value".
local function run_case(way, h, w, C)
  local fs, ft = inputs(h, w, C)
  collectgarbage()
  skd.empty_cache()
  local rss0 = status_kib("VmRSS")
  local best, best_cpu, value = math.huge, math.huge, nil
  local reps = h * w >= 8192 and 1 or 2
  for _ = 1, reps do
    local x = fs:detach():requires_grad()
    local t0, c0 = skd.clock(), os.clock()
    local l = LOSS[way](x, ft)
    l:backward()
    local dt, dc = skd.clock() - t0, os.clock() - c0
    value = l:item()
    if dt < best then best, best_cpu = dt, dc end
    l, x = nil, nil
    collectgarbage()
  end
  local hwm = status_kib("VmHWM")
  local peak = (hwm and rss0) and (hwm - rss0) * 1024 or -1
  print(string.format("%.6f %.6f %d %.12g", best, best_cpu, peak, value))
end

if arg[1] == "--case" then
  run_case(arg[2], tonumber(arg[3]), tonumber(arg[4]), tonumber(arg[5]))
  return
end

local exe = arg[-1] or "./skd-lua"
local script = arg[0]

local function child(way, h, w, C)
  local cmd = string.format("MALLOC_MMAP_THRESHOLD_=131072 %s %s --case %s %d %d %d 2>&1",
                            exe, script, way, h, w, C)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  local t, c, peak, v = out:match("([%d%.]+) ([%d%.]+) (%-?%d+) (%S+)%s*$")
  if not t then return nil, out end
  return {time = tonumber(t), cpu = tonumber(c), peak = tonumber(peak), value = tonumber(v)}
end

local function mib(b) return b < 0 and "?" or string.format("%.1f", b / 2 ^ 20) end

print(string.format("pair-wise loss, value + backward, B = 1, beta = 1, C_s = C_t = C, %d threads",
                    skd.threads()))
print(string.format("%-10s %6s %4s  %-8s %8s %8s %9s  %-16s %s", "map", "N", "C", "way", "wall s",
                    "cpu s", "peak MiB", "value", "rel. diff vs nxn (vs gram when no nxn)"))
local t_start = skd.clock()
for _, hw in ipairs(SIZES) do
  local h, w = hw[1], hw[2]
  local N = h * w
  for _, C in ipairs(CHANNELS) do
    local res = {}
    for _, way in ipairs(WAYS) do
      local matrix = 4 * N * N
      if way == "nxn" and NXN_MATRICES * matrix > NXN_CAP then
        res[way] = {skipped = string.format("skipped: N×N = %.1f GiB per matrix, ~%.0f GiB in all",
                                            matrix / 2 ^ 30, NXN_MATRICES * matrix / 2 ^ 30)}
      else
        local r, err = child(way, h, w, C)
        res[way] = r or {skipped = "failed: " .. tostring(err):gsub("\n", " ")}
      end
    end
    local ref = res.nxn and res.nxn.value
    for _, way in ipairs(WAYS) do
      local r = res[way]
      local label = string.format("%-10s %6d %4d  %-8s", h .. "x" .. w, N, C, way)
      if r.skipped then
        print(label .. "  " .. r.skipped)
      else
        local diff = ""
        if way ~= "local" and way ~= "nxn" then
          local base = ref or (way == "gram-ops" and res.gram.value) or nil
          if base then diff = string.format("%.2e", math.abs(r.value - base) / math.abs(base)) end
        end
        print(string.format("%s %8.3f %8.3f %9s  %-16.9g %s", label, r.time, r.cpu, mib(r.peak),
                            r.value, diff))
      end
    end
  end
end
print(string.format("(%.0f s in all)", skd.clock() - t_start))
