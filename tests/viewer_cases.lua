-- The viewer (issue 6), run by tests/test_viewer.sh: under Xvfb when it is installed, so the
-- windowed cases drive a real SDL window; the headless (PNG) cases always run.
--
-- Every check reads pixels back from PNG files the viewer wrote, at places v:layout() names:
-- palette colours where the label says, colour-map extremes where the affinity says.
local T = require "harness"

local BIN = os.getenv("SKD_BIN") or "./build/skd-lua"
local TMP = os.tmpname()
os.remove(TMP)
assert(os.execute("mkdir -p " .. TMP))

local CAMVID = {
  [0] = {128, 128, 128}, {128, 0, 0}, {192, 192, 128}, {128, 64, 128}, {60, 40, 222},
  {128, 128, 0}, {192, 128, 128}, {64, 64, 128}, {64, 0, 128}, {64, 64, 0}, {0, 128, 192},
  {0, 0, 0},
}
local BRIGHT, DARK = {253, 231, 37}, {68, 1, 84}    -- the colour map's top and bottom
local WRONG, RIGHT, BLACK = {235, 50, 50}, {30, 100, 40}, {0, 0, 0}

local H, W = 24, 32

-- A frame whose every panel is known:
--   label: columns 1-8 Sky (0), 9-16 Road (3), 17-24 Car (8), 25-32 ignore (255)
--   teacher logits (12 x 6 x 8): class 1 in the top half, class 4 in the bottom half
--   student ids: the label, except Tree (5) in rows 1-12 of columns 9-16 (wrong) and Pole (2)
--     over the ignored columns (not an error)
--   image: red left half, blue right half, values in [0, 1]
--   features (6 x 8 nodes, beta 1): teacher nodes in columns 1-4 are e1, 5-8 are e2, so a_ij is
--     1 within a side and 0 across; every student node is e1, so a_ij = 1 everywhere
local function known_frame()
  local img = skd.zeros(3, H, W)
  img:select(1, 1):narrow(2, 1, 16):fill_(1)
  img:select(1, 3):narrow(2, 17, 16):fill_(1)
  local label = skd.zeros(H, W, {dtype = "int32"})
  label:narrow(2, 9, 8):fill_(3)
  label:narrow(2, 17, 8):fill_(8)
  label:narrow(2, 25, 8):fill_(255)
  local teacher = skd.zeros(12, H // 4, W // 4)
  teacher:select(1, 2):narrow(1, 1, 3):fill_(5)
  teacher:select(1, 5):narrow(1, 4, 3):fill_(5)
  local student = label:clone()
  student:narrow(1, 1, 12):narrow(2, 9, 8):fill_(5)
  student:narrow(2, 25, 8):fill_(2)
  local ft = skd.zeros(2, 6, 8)
  ft:select(1, 1):narrow(2, 1, 4):fill_(1)
  ft:select(1, 2):narrow(2, 5, 4):fill_(1)
  local fs = skd.zeros(3, 6, 8)
  fs:select(1, 1):fill_(1)
  return {image = img, label = label, teacher = teacher, student = student,
          features = {teacher = ft, student = fs}}
end

local function snap(v, name)
  local path = TMP .. "/" .. (name or "snap") .. ".png"
  v:save(path)
  return skd.viewer.read_png(path), path
end

-- Points are {x, y} canvas pixels, 1-based.
local function rgb(img, p)
  return {img:get(p[2], p[1], 1), img:get(p[2], p[1], 2), img:get(p[2], p[1], 3)}
end

local function is_rgb(img, p, want, what, tol)
  local x, y = p[1], p[2]
  local got = rgb(img, p)
  for k = 1, 3 do
    if math.abs(got[k] - want[k]) > (tol or 0) then
      error(string.format("%s at (%d,%d): expected rgb(%d,%d,%d), got rgb(%d,%d,%d)", what, x,
                          y, want[1], want[2], want[3], got[1], got[2], got[3]), 2)
    end
  end
end

-- Canvas position of the centre of image pixel (ix, iy) inside panel rect r (all 1-based).
local function at(r, ix, iy)
  return {r.x + ((2 * ix - 1) * r.w) // (2 * W), r.y + ((2 * iy - 1) * r.h) // (2 * H)}
end

-- Canvas position of the centre of matrix entry (i, j) of an n×n heatmap in rect r.
local function cell(r, i, j, n)
  return {r.x + ((2 * j - 1) * r.w) // (2 * n), r.y + ((2 * i - 1) * r.h) // (2 * n)}
end

local function open(mode, extra)
  local o = {title = "test", scale = 8, classes = "camvid", mode = mode, dir = TMP .. "/" .. mode}
  for k, x in pairs(extra or {}) do o[k] = x end
  return skd.viewer.open(o)
end

-- Pixels of colour `want` inside rect r (tensor arithmetic: a Lua loop per pixel is slow).
local function count_colour(img, r, want)
  local region = img:narrow(1, r.y, r.h):narrow(2, r.x, r.w):float()
  local d = (region - skd.tensor(want)):abs():sum(3)     -- 0 exactly where the colour matches
  return (1 - d):relu():sum():item()
end

-- The known frame's pixels, in either mode.
local function check_known_frame(v)
  local img = snap(v, "known")
  local L = v:layout()
  T.eq(L.input.w, W * 8, "panel width = W x scale")
  is_rgb(img, at(L.input, 4, 4), {255, 0, 0}, "input red half")
  is_rgb(img, at(L.input, 28, 4), {0, 0, 255}, "input blue half")
  is_rgb(img, at(L.label, 4, 5), CAMVID[0], "label Sky")
  is_rgb(img, at(L.label, 12, 5), CAMVID[3], "label Road")
  is_rgb(img, at(L.label, 20, 5), CAMVID[8], "label Car")
  is_rgb(img, at(L.label, 28, 5), BLACK, "label ignore")
  is_rgb(img, at(L.teacher, 4, 3), CAMVID[1], "teacher argmax top")
  is_rgb(img, at(L.teacher, 30, 20), CAMVID[4], "teacher argmax bottom")
  is_rgb(img, at(L.student, 12, 3), CAMVID[5], "student wrong block")
  is_rgb(img, at(L.student, 12, 20), CAMVID[3], "student right block")
  is_rgb(img, at(L.error, 12, 3), WRONG, "error: wrong")
  is_rgb(img, at(L.error, 12, 20), RIGHT, "error: right")
  is_rgb(img, at(L.error, 4, 3), RIGHT, "error: right (Sky)")
  is_rgb(img, at(L.error, 28, 3), BLACK, "error: ignored")
  -- N = 48 nodes; node 1 is grid (1,1), node 5 is grid (1,5): across the teacher's two sides.
  is_rgb(img, cell(L.affinity_teacher, 1, 1, 48), BRIGHT, "teacher a(1,1) = 1")
  is_rgb(img, cell(L.affinity_teacher, 1, 5, 48), DARK, "teacher a(1,5) = 0")
  is_rgb(img, cell(L.affinity_teacher, 48, 48, 48), BRIGHT, "teacher a(48,48) = 1")
  is_rgb(img, cell(L.affinity_student, 1, 5, 48), BRIGHT, "student a(1,5) = 1")
  is_rgb(img, cell(L.affinity_diff, 1, 5, 48), BRIGHT, "|diff|(1,5) = 1 = max")
  is_rgb(img, cell(L.affinity_diff, 1, 1, 48), DARK, "|diff|(1,1) = 0")
  local cb = L.colorbar
  is_rgb(img, {cb.x + 5, cb.y + 16}, BRIGHT, "colour bar top")
  T.ok(count_colour(img, {x = cb.x, y = cb.y + cb.h - 20, w = 12, h = 12}, DARK) > 0,
       "colour bar bottom is the dark end")
  return img
end

-- Keys and mouse; the same checks whether events go through SDL's queue or straight in.
local function check_events(v)
  local L = v:layout()
  T.eq(v:state().view, "matrices")
  T.eq(v:inject{key = "space"}, true)
  T.eq(v:paused(), true, "space pauses")
  v:inject{key = "space"}
  T.eq(v:paused(), false, "space resumes")
  v:inject{key = "l"}
  T.eq(v:state().log_scale, true, "l: log scale")
  v:inject{key = "l"}
  -- hover: the status bar's pixel under the mouse
  v:inject{mouse = at(L.label, 12, 5)}
  local s = v:state()
  T.eq(s.cursor[1], 12, "cursor x")
  T.eq(s.cursor[2], 5, "cursor y")
  v:inject{mouse = {1, 1}}
  T.eq(v:state().cursor, nil, "cursor leaves the panels")
  -- click pins the affinity row's pixel; u unpins
  v:inject{click = at(L.input, 2, 2)}
  s = v:state()
  T.eq(s.pinned, true, "click pins")
  T.eq(s.pixel[1], 2)
  T.eq(s.pixel[2], 2)
  -- tab: rows of the pinned pixel over the image
  v:inject{key = "tab"}
  T.eq(v:state().view, "rows", "tab cycles the affinity view")
  for _ = 1, 4 do v:inject{key = "+"} end
  T.near(v:state().alpha, 1.0, 1e-9, "+ raises alpha to 1")
  L = v:layout()
  local img = snap(v, "rows")
  -- node of pixel (2,2) is grid (1,1), on the teacher's left side
  is_rgb(img, at(L.affinity_teacher, 4, 20), BRIGHT, "teacher row: same side")
  is_rgb(img, at(L.affinity_teacher, 28, 20), DARK, "teacher row: other side")
  is_rgb(img, at(L.affinity_student, 28, 20), BRIGHT, "student row: all similar")
  is_rgb(img, at(L.affinity_diff, 4, 20), DARK, "|diff| row: same side")
  is_rgb(img, at(L.affinity_diff, 28, 20), BRIGHT, "|diff| row: other side")
  v:inject{key = "-"}
  T.near(v:state().alpha, 0.9, 1e-9, "- lowers alpha")
  img = snap(v, "rows_alpha")
  -- 0.9 of the colour map over 0.1 of the red image
  is_rgb(img, at(L.affinity_teacher, 4, 20), {253, 208, 33}, "row blended over the image", 1)
  v:inject{key = "u"}
  T.eq(v:state().pinned, false, "u unpins")
  v:inject{key = "tab"}
  v:inject{key = "="}
  v:inject{key = "minus"}
  T.eq(v:state().view, "matrices")
end

-- Three samples kept (history = 3), then n/p through them: the label panel follows.
local function check_history(v)
  for k = 1, 3 do
    v:show{label = skd.full({H, W}, k):int()}
  end
  local L = v:layout()
  local function label_is(k, what)
    is_rgb(snap(v, "hist"), at(L.label, 5, 5), CAMVID[k], what)
  end
  T.eq(v:state().sample, v:state().samples, "new samples are shown")
  label_is(3, "the newest")
  v:inject{key = "p"}
  label_is(2, "p: the previous sample")
  v:inject{key = "p"}
  v:inject{key = "p"}
  label_is(1, "p stops at the oldest kept")
  v:inject{key = "n"}
  label_is(2, "n: the next sample")
  v:show{label = skd.full({H, W}, 9):int()}
  label_is(2, "browsing: a new sample does not take the view")
  for _ = 1, 10 do v:inject{key = "n"} end
  label_is(9, "n stops at the newest")
  v:show{label = skd.full({H, W}, 10):int()}
  label_is(10, "at the newest, new samples show again")
end

local function check_losses(v)
  for i = 1, 20 do
    v:show{losses = {ce = 2 * 0.8 ^ i, kd = 0.5 + 0.01 * i}, iter = 10 * i}
  end
  T.eq(v:state().iter, 200, "iteration counter")
  local L = v:layout()
  local img = snap(v, "losses")
  T.ok(count_colour(img, L.losses, {86, 180, 233}) > 30, "first term's curve drawn")
  T.ok(count_colour(img, L.losses, {230, 159, 0}) > 30, "second term's curve drawn")
  v:inject{key = "l"}
  img = snap(v, "losses_log")
  T.ok(count_colour(img, L.losses, {86, 180, 233}) > 30, "log axis: curve drawn")
  v:show{losses = {ce = 1}}
  T.eq(v:state().iter, 201, "no iter given: one more than the last")
  v:inject{key = "l"}
end

-- A toy training loop (autograd, SGD by hand) that shows every step and has its viewer
-- closed at step 4: it runs to the end and still learns.
local function training_loop(v)
  local x = skd.randn(64)
  local y = x * 3
  local w = skd.zeros(1):requires_grad()
  local first, last, shown = nil, nil, 0
  for it = 1, 8 do
    local loss = ((x * w - y) ^ 2):mean()
    loss:backward()
    w = (w:detach() - w.grad * 0.2):requires_grad()
    first, last = first or loss:item(), loss:item()
    if v:show{image = skd.rand(3, 8, 8), losses = {mse = loss}} then shown = shown + 1 end
    if it == 4 then v:inject{close = true} end
  end
  T.eq(shown, 4, "shown until the window closed")
  T.ok(last < first * 0.1, "training went on after the close")
  T.eq(v:poll(), false, "poll on a closed viewer")
  T.eq(v:show{image = skd.rand(3, 8, 8)}, false, "show on a closed viewer")
end

---------------------------------------------------------------------------------------------
-- headless

T.test("headless: a known frame has the palette, error map and affinity extremes", function()
  local v = open("png")
  T.eq(v:mode(), "png")
  T.eq(v:show(known_frame()), true)
  check_known_frame(v)
  v:close()
end)

T.test("headless: every show writes the next numbered frame, the same as save", function()
  local v = open("png", {dir = TMP .. "/frames_test"})
  local f = known_frame()
  v:show(f)
  v:show(f)
  T.eq(v:state().frames, 2)
  local frame2 = skd.viewer.read_png(v:frame_dir() .. "/frame_000002.png")
  local saved = snap(v, "same")
  T.eq(T.maxdiff(frame2, saved), 0, "frame 2 = save")
  T.ok(io.open(v:frame_dir() .. "/frame_000001.png") ~= nil, "frame 1 written")
  v:close()
end)

T.test("headless: keys and mouse do what they say", function()
  local v = open("png", {history = 3})
  v:show(known_frame())
  check_events(v)
  v:close()
end)

T.test("headless: n/p browse the kept samples", function()
  local v = open("png", {history = 3})
  check_history(v)
  v:close()
end)

T.test("headless: loss curves per term, linear and log", function()
  local v = open("png")
  check_losses(v)
  v:close()
end)

T.test("headless: s writes a screenshot, q closes; save still works after", function()
  local v = open("png", {dir = TMP .. "/shots"})
  v:show(known_frame())
  v:inject{key = "s"}
  local msg = v:state().message
  T.ok(msg:find("saved", 1, true), "status says saved: " .. msg)
  local shot = skd.viewer.read_png(TMP .. "/shots/skd_screenshot_0001.png")
  T.eq(shot:size(2), v:layout().canvas.w)
  T.eq(v:inject{key = "q"}, false, "q closes")
  T.eq(v:show(known_frame()), false)
  T.eq(v:poll(), false)
  v:save(TMP .. "/after_close.png")
  v:close()
end)

T.test("headless: a training loop finishes with the viewer closed in the middle", function()
  training_loop(open("png"))
end)

T.test("affinity: cosine similarities by hand and as skd.losses.affinity", function()
  local v = open("png")
  local f = known_frame()
  v:show(f)
  local a = v:affinity()
  T.eq(a.grid[1], 6)
  T.eq(a.grid[2], 8)
  T.eq(a.beta, 1)
  -- by hand: node (r, c) is e1 for c <= 4, e2 otherwise
  local want = {}
  for i = 0, 47 do
    want[i + 1] = {}
    for j = 0, 47 do want[i + 1][j + 1] = ((i % 8 < 4) == (j % 8 < 4)) and 1 or 0 end
  end
  T.near(a.teacher, want, 1e-6, "teacher")
  T.near(a.student, skd.ones(48, 48), 1e-6, "student")
  -- random features, pooled to fit max_nodes (beta 3: 10x7 nodes, partial border patches)
  local fs = skd.randn(5, 30, 20)
  local ft = skd.randn(7, 30, 20)
  local w = open("png", {max_nodes = 100})
  w:show{features = {teacher = ft, student = fs}}
  a = w:affinity()
  T.eq(a.beta, 3)
  T.eq(a.grid[1] * a.grid[2], 70)
  local ref = skd.losses.affinity(fs:reshape(1, 5, 30, 20), {beta = 3})
  T.near(a.student, ref:reshape(70, 70), 1e-5, "student vs skd.losses.affinity")
  ref = skd.losses.affinity(ft:reshape(1, 7, 30, 20), {beta = 3})
  T.near(a.teacher, ref:reshape(70, 70), 1e-5, "teacher vs skd.losses.affinity")
  -- a teacher map twice the student's size lands on the student's node grid
  local big = skd.randn(4, 12, 16)
  w:show{features = {teacher = big, student = skd.randn(3, 6, 8)}}
  a = w:affinity()
  T.eq(a.grid[1] * a.grid[2], 48)
  ref = skd.losses.affinity(big:reshape(1, 4, 12, 16), {beta = 2})
  T.near(a.teacher, ref:reshape(48, 48), 1e-5, "teacher pooled onto the student grid")
  v:close()
  w:close()
end)

T.test("inputs: batches, normalised images, logits only (REPL style)", function()
  local v = open("png")
  local img = skd.zeros(2, 3, H, W) - 2             -- normalised: range [-2, 3]
  img:select(1, 2):select(1, 2):narrow(2, 1, 4):fill_(3)
  local label = skd.zeros(2, H, W, {dtype = "int32"})
  label:select(1, 2):fill_(4)
  v:show{image = img, label = label, index = 2}
  local L = v:layout()
  local shot = snap(v, "batch")
  is_rgb(shot, at(L.label, 5, 5), CAMVID[4], "batch element 2's label")
  is_rgb(shot, at(L.input, 2, 2), {0, 255, 0}, "min-max: max -> 255")
  is_rgb(shot, at(L.input, 20, 2), {0, 0, 0}, "min-max: min -> 0")
  T.eq(v:show{student = skd.randn(1, 5, 8, 8)}, true, "logits alone, with a batch dim")
  T.eq(v:layout().student.w, 8 * 8, "display size from the logits")
  v:close()
end)

T.test("errors name the input and what was expected", function()
  local v = open("png")
  T.raises(function() v:show{labels = skd.zeros(4, 4)} end, "unknown field 'labels'")
  T.raises(function() v:show{image = skd.zeros(2, 4, 4)} end, "image expects 1 or 3 channels")
  T.raises(function() v:show{label = skd.zeros(4)} end, "at least 2 dims")
  T.raises(function() v:show{image = skd.zeros(3, 4, 4), label = skd.zeros(4)} end,
           "label expects HxW")
  T.raises(function() v:show{label = skd.zeros(2, 4, 4), index = 3} end, "out of range")
  T.raises(function() v:show{losses = {ce = "x"}} end, "losses.ce expects a number")
  T.raises(function() v:inject{key = "F13"} end, "unknown key")
  T.raises(function() skd.viewer.open{mode = "tv"} end, "mode expects")
  T.raises(function() skd.viewer.open{classes = "voc2099"} end, "unknown class preset")
  v:close()
end)

T.test("environment: SKD_VIEWER=png, no display, no font", function()
  local function run(env, code)
    local p = io.popen(env .. " " .. BIN .. " -e '" .. code .. "' 2>&1")
    local out = p:read("a")
    p:close()
    return out
  end
  local dir = TMP .. "/envdir"
  local out = run("SKD_VIEWER=png SKD_VIEWER_DIR=" .. dir,
                  "local v = skd.viewer.open{}; v:show{image = skd.rand(3, 4, 4)}; print(v:mode())")
  T.ok(out:find("png", 1, true), "SKD_VIEWER=png: " .. out)
  T.ok(io.open(dir .. "/frame_000001.png") ~= nil, "frames go to SKD_VIEWER_DIR")
  out = run("env -u DISPLAY -u WAYLAND_DISPLAY", "print(skd.viewer.open{dir = \"" .. TMP .. "\"}:mode())")
  T.ok(out:find("png", 1, true), "no display: " .. out)
  out = run("SKD_VIEWER_FONT=/nonexistent.ttf", "print(pcall(skd.viewer.open))")
  T.ok(out:find("SKD_VIEWER_FONT", 1, true), "no font: " .. out)
end)

---------------------------------------------------------------------------------------------
-- windowed (a real SDL window: Xvfb in the test script)

local window_ok, why = false, "no DISPLAY"
if os.getenv("SKD_VIEWER_TEST_WINDOW") ~= "0" and os.getenv("DISPLAY") then
  local ok, v = pcall(open, "window")
  window_ok, why = ok, tostring(v)
  if ok then v:close() end
end

if not window_ok then
  T.skip("windowed cases", why)
else
  T.test("window: the known frame, on screen and saved, equals the headless one", function()
    local v = open("window")
    T.eq(v:mode(), "window")
    v:show(known_frame())
    v:inject{mouse = {1, 1}}         -- whatever the X pointer did, no pixel is hovered
    local win = check_known_frame(v)
    local p = open("png")
    p:show(known_frame())
    local head = snap(p, "headless")
    T.eq(T.maxdiff(win, head), 0, "window save = headless frame")
    local grabbed = TMP .. "/grab.png"
    v:grab(grabbed)
    T.eq(T.maxdiff(skd.viewer.read_png(grabbed), head), 0, "pixels on screen = headless frame")
    v:close()
    p:close()
  end)

  T.test("window: injected keys and mouse go through SDL's event queue", function()
    local v = open("window", {history = 3})
    v:show(known_frame())
    check_events(v)
    check_history(v)
    check_losses(v)
    v:close()
  end)

  T.test("window: paused wait times out, and returns at once when not paused", function()
    local v = open("window")
    v:inject{key = "space"}
    local t0 = skd.clock()
    T.eq(v:wait(0.2), true)
    T.ok(skd.clock() - t0 >= 0.15, "waited while paused")
    t0 = skd.clock()
    T.eq(v:poll(0.2), true)
    T.ok(skd.clock() - t0 >= 0.15, "poll(seconds) idles")
    v:inject{key = "space"}
    t0 = skd.clock()
    v:wait(5)
    T.ok(skd.clock() - t0 < 1, "not paused: no wait")
    v:close()
    T.eq(v:wait(5), false, "closed: no wait")
  end)

  T.test("window: the window answers events while the caller computes", function()
    local v = open("window")
    v:show(known_frame())
    -- the caller never polls: only the window thread can have handled these
    for _ = 1, 3 do v:inject{key = "tab"} end
    T.eq(v:state().view, "rows")
    local t0 = skd.clock()
    for _ = 1, 20 do v:show(known_frame()) end
    T.ok((skd.clock() - t0) / 20 < 0.5, "show does not wait for the screen")
    v:close()
  end)

  T.test("window: a training loop finishes with the window closed in the middle", function()
    training_loop(open("window"))
  end)

  T.test("window: a second window replaces the first", function()
    local a = open("window")
    local b = open("window")
    T.eq(a:poll(), false, "first closed")
    T.eq(b:poll(), true, "second open")
    T.eq(a:show{image = skd.rand(3, 4, 4)}, false)
    b:close()
    a:close()
  end)
end

os.execute("rm -rf " .. TMP)
T.done()
