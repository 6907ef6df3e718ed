//===- Plot.cpp - A loss-curve PNG ----------------------------------------===//

#include "runtime/train/Plot.h"

#include "runtime/support/File.h"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>

namespace tessera::rt {

namespace {

struct RGB {
  uint8_t r, g, b;
};

/// 3x5 glyphs, one row per 3 bits (MSB left).
const char *glyph(char c) {
  switch (c) {
  case '0': return "\7\5\5\5\7";
  case '1': return "\2\6\2\2\7";
  case '2': return "\7\1\7\4\7";
  case '3': return "\7\1\7\1\7";
  case '4': return "\5\5\7\1\1";
  case '5': return "\7\4\7\1\7";
  case '6': return "\7\4\7\5\7";
  case '7': return "\7\1\1\1\1";
  case '8': return "\7\5\7\5\7";
  case '9': return "\7\5\7\1\7";
  case '.': return "\0\0\0\0\2";
  case '-': return "\0\0\7\0\0";
  case 'e': return "\7\5\7\4\7";
  case 'a': return "\7\1\7\5\7";
  case 'i': return "\2\0\2\2\2";
  case 'l': return "\2\2\2\2\3";
  case 'n': return "\0\6\5\5\5";
  case 'o': return "\0\7\5\5\7";
  case 'p': return "\7\5\7\4\4";
  case 'r': return "\0\7\4\4\4";
  case 's': return "\7\4\7\1\7";
  case 't': return "\2\7\2\2\3";
  case 'v': return "\0\5\5\5\2";
  case 'd': return "\1\1\7\5\7";
  default: return "\0\0\0\0\0";
  }
}

class Canvas {
public:
  Canvas(int w, int h) : w(w), h(h), px(size_t(w) * h, RGB{255, 255, 255}) {}
  void set(int x, int y, RGB c) {
    if (x >= 0 && y >= 0 && x < w && y < h)
      px[size_t(y) * w + x] = c;
  }
  void line(double x0, double y0, double x1, double y1, RGB c, int thick = 1) {
    int n = int(std::max(std::fabs(x1 - x0), std::fabs(y1 - y0))) + 1;
    for (int i = 0; i <= n; ++i) {
      double t = double(i) / n;
      int x = int(std::lround(x0 + (x1 - x0) * t)), y = int(std::lround(y0 + (y1 - y0) * t));
      for (int dx = 0; dx < thick; ++dx)
        for (int dy = 0; dy < thick; ++dy)
          set(x + dx, y + dy, c);
    }
  }
  void text(int x, int y, const std::string &s, RGB c, int scale = 2) {
    for (char ch : s) {
      const char *g = glyph(ch);
      for (int row = 0; row < 5; ++row)
        for (int col = 0; col < 3; ++col)
          if (g[row] >> (2 - col) & 1)
            for (int a = 0; a < scale; ++a)
              for (int b = 0; b < scale; ++b)
                set(x + col * scale + a, y + row * scale + b, c);
      x += 4 * scale;
    }
  }
  Status writePNG(const std::string &path) const {
    std::string raw;
    raw.reserve(size_t(h) * (1 + 3 * w));
    for (int y = 0; y < h; ++y) {
      raw.push_back('\0'); // filter: none
      raw.append(reinterpret_cast<const char *>(&px[size_t(y) * w]), size_t(w) * 3);
    }
    uLongf size = compressBound(uLong(raw.size()));
    std::string z(size, '\0');
    if (compress2(reinterpret_cast<Bytef *>(z.data()), &size,
                  reinterpret_cast<const Bytef *>(raw.data()), uLong(raw.size()),
                  9) != Z_OK)
      return Status::fail(path + ": compression failed");
    z.resize(size);
    std::string png("\x89PNG\r\n\x1a\n", 8);
    auto be32 = [](uint32_t v) {
      return std::string{char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
    };
    auto chunk = [&](const char *type, const std::string &data) {
      std::string body = std::string(type, 4) + data;
      png += be32(uint32_t(data.size())) + body +
             be32(uint32_t(crc32(0, reinterpret_cast<const Bytef *>(body.data()),
                                 uInt(body.size()))));
    };
    chunk("IHDR", be32(uint32_t(w)) + be32(uint32_t(h)) +
                      std::string("\x08\x02\x00\x00\x00", 5));
    chunk("IDAT", z);
    chunk("IEND", "");
    return writeFileAtomic(path, png);
  }

private:
  int w, h;
  std::vector<RGB> px;
};

std::string number(double v) {
  char buf[32];
  if (v != 0 && (std::fabs(v) >= 1e5 || std::fabs(v) < 1e-3))
    std::snprintf(buf, sizeof(buf), "%.1e", v);
  else
    std::snprintf(buf, sizeof(buf), "%.4g", v);
  return buf;
}

} // namespace

Status plotLosses(const std::string &path,
                  const std::vector<std::pair<int64_t, double>> &train,
                  const std::vector<std::pair<int64_t, double>> &val) {
  const int W = 800, H = 500, left = 80, right = 20, top = 40, bottom = 50;
  Canvas c(W, H);
  double x0 = 1e300, x1 = -1e300, y0 = 1e300, y1 = -1e300;
  for (const auto *series : {&train, &val})
    for (auto [s, v] : *series) {
      if (!std::isfinite(v))
        continue;
      x0 = std::min(x0, double(s));
      x1 = std::max(x1, double(s));
      y0 = std::min(y0, v);
      y1 = std::max(y1, v);
    }
  if (x0 > x1)
    return c.writePNG(path);
  if (x1 == x0)
    x1 = x0 + 1;
  if (y1 == y0)
    y1 = y0 + 1;
  y0 = std::min(y0, 0.0 + y0); // keep the data's own range
  auto X = [&](double s) { return left + (s - x0) / (x1 - x0) * (W - left - right); };
  auto Y = [&](double v) { return top + (y1 - v) / (y1 - y0) * (H - top - bottom); };
  RGB grey{200, 200, 200}, black{0, 0, 0}, blue{31, 119, 180}, orange{230, 100, 20};
  for (int i = 0; i <= 5; ++i) {
    double v = y0 + (y1 - y0) * i / 5, s = x0 + (x1 - x0) * i / 5;
    c.line(left, Y(v), W - right, Y(v), grey);
    c.text(8, int(Y(v)) - 5, number(v), black);
    c.line(X(s), H - bottom, X(s), H - bottom + 5, black);
    c.text(int(X(s)) - 12, H - bottom + 10, number(std::round(s)), black);
  }
  c.line(left, top, left, H - bottom, black);
  c.line(left, H - bottom, W - right, H - bottom, black);
  c.text(W / 2 - 16, H - 18, "step", black);
  // Training loss: a running mean over ~1% of the run keeps it readable.
  size_t win = std::max<size_t>(1, train.size() / 100);
  double sum = 0;
  double px = 0, py = 0;
  for (size_t i = 0; i < train.size(); ++i) {
    sum += train[i].second;
    if (i >= win)
      sum -= train[i - win].second;
    double v = sum / double(std::min(i + 1, win));
    double x = X(double(train[i].first)), y = Y(v);
    if (i > 0)
      c.line(px, py, x, y, blue, 2);
    px = x;
    py = y;
  }
  for (size_t i = 0; i < val.size(); ++i) {
    double x = X(double(val[i].first)), y = Y(val[i].second);
    if (i > 0)
      c.line(px, py, x, y, orange, 2);
    for (int dx = -3; dx <= 3; ++dx)
      for (int dy = -3; dy <= 3; ++dy)
        c.set(int(x) + dx, int(y) + dy, orange);
    px = x;
    py = y;
  }
  c.line(W - 200, 16, W - 170, 16, blue, 3);
  c.text(W - 160, 11, "train loss", black);
  if (!val.empty()) {
    c.line(W - 200, 30, W - 170, 30, orange, 3);
    c.text(W - 160, 25, "val loss", black);
  }
  return c.writePNG(path);
}

} // namespace tessera::rt
