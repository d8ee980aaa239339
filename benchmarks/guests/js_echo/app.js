// The JavaScript guest of the benchmarks (componentize-qjs, no SDK): the same three answers as the Python guest.
//   .../echo       the request body
//   .../big?n=N    N bytes of 00 01 .. ff repeated
//   anything else  "Hello, world!\n"
const HELLO = new Uint8Array([72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100, 33, 10]);
const BINARY = [["content-type", "application/octet-stream"]];

function pattern(n) {
  // 256 bytes by hand, then doubling copies (memmove in the engine): a byte-by-byte loop over 64 MiB would
  // measure QuickJS's interpreter, not the host.
  const out = new Uint8Array(n);
  for (let i = 0; i < Math.min(n, 256); i++) out[i] = i;
  for (let have = 256; have < n; have *= 2) out.copyWithin(have, 0, Math.min(have, n - have));
  return out;
}

export const handler = {
  handle(req) {
    if (req.path.endsWith("/echo")) return { status: 200, headers: BINARY, body: req.body };
    if (req.path.endsWith("/big")) {
      const m = /(?:^|&)n=(\d+)/.exec(req.query);
      return { status: 200, headers: BINARY, body: pattern(m ? Number(m[1]) : 1 << 20) };
    }
    return { status: 200, headers: [["content-type", "text/plain"]], body: HELLO };
  },
};
