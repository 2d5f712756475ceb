-- A tiny network overfits a handful of synthetic scenes to > 95% pixel accuracy: the whole
-- path (data, convolutions, batch norm, cross-entropy, backward, optimiser, metrics)
-- learns, end to end (issue 4).
local T = require "harness"
local nn = skd.nn

T.test("a tiny conv net overfits 4 synthetic images to > 95% pixel accuracy", function()
  skd.manual_seed(3)
  local ds = skd.data.synthetic{split = "train", n = 4, size = {32, 48}, seed = 5}
  local images, labels = {}, {}
  for i = 1, #ds do
    images[i] = ds[i].image:unsqueeze(1)
    labels[i] = ds[i].label:unsqueeze(1)
  end
  local x, y = skd.cat(images, 1), skd.cat(labels, 1)
  local nc = #ds.classes
  local net = nn.Sequential{
    nn.Conv2d(3, 32, 3, {padding = 1}), nn.BatchNorm2d(32), nn.ReLU(),
    nn.Conv2d(32, 32, 3, {padding = 2, dilation = 2}), nn.BatchNorm2d(32), nn.ReLU(),
    nn.Conv2d(32, 32, 3, {padding = 4, dilation = 4}), nn.BatchNorm2d(32), nn.ReLU(),
    nn.Conv2d(32, nc, 1),
  }
  local opt = skd.optim.adam(net, {lr = 0.01})
  net:train()
  local first, last
  for it = 1, 120 do
    opt:zero_grad()
    local loss = skd.cross_entropy(net(x), y, {ignore_index = 255})
    loss:backward()
    opt:step()
    first = first or loss:item()
    last = loss:item()
  end
  net:eval()
  local cm = skd.metrics.confusion(nc)
  skd.no_grad(function() cm:add(net(x), y) end)
  print(string.format("      loss %.3f -> %.3f, pixel accuracy %.2f%%", first, last, 100 * cm:pixel_accuracy()))
  T.ok(cm:pixel_accuracy() > 0.95, string.format("pixel accuracy %.4f", cm:pixel_accuracy()))
end)

T.done()
