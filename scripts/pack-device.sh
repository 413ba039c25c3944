#!/usr/bin/env bash
# Packs what the GPU machine (no Node.js, no network) needs beside the working
# tree: Node itself (.device/, from ../shared/tools/device-node.sh), the addon
# built for a portable instruction set, and the production node_modules in
# .carry/ (tiktoken without its full encoders, which the server never loads).
# Then carry [".device", "dist", "build/Release", ".carry"] and start each
# device command with `source scripts/device-session.sh; build` (its helpers: build, suite, tp).
# Rebuild the addon for this machine afterwards (npm run build:native) if -march=native matters here.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ../shared/tools/device-node.sh >/dev/null
grep -qx '/.carry/' .git/info/exclude || echo '/.carry/' >> .git/info/exclude
TACHYON_MARCH=x86-64-v3 npm run build:native >/dev/null
npx tsc -p tsconfig.json
rm -rf .carry && mkdir -p .carry/node_modules
for p in $(npm ls --omit=dev --all --parseable 2>/dev/null | grep node_modules/ | sed "s|^$PWD/node_modules/||"); do
  mkdir -p ".carry/node_modules/$(dirname "$p")"
  cp -r "node_modules/$p" ".carry/node_modules/$p"
done
# What travels is capped at 64 MiB: drop sources, CommonJS twins and the full tiktoken encoders, which the server never loads.
rm -rf .carry/node_modules/tiktoken/encoders .carry/node_modules/tiktoken/tiktoken_bg.wasm .carry/node_modules/zod/src \
  .carry/node_modules/hono/dist/cjs .carry/node_modules/bintrees/test .carry/node_modules/bintrees/dist .carry/node_modules/bintrees/examples .carry/node_modules/node-addon-api
# better-sqlite3: only its loader and the built addon travel (the SQLite sources and objects are 27 MB).
b=.carry/node_modules/better-sqlite3
mv "$b/build/Release/better_sqlite3.node" "$b/better_sqlite3.node" && rm -rf "$b/build" "$b/deps" "$b/src" && mkdir -p "$b/build/Release" && mv "$b/better_sqlite3.node" "$b/build/Release/"
# CommonJS twins, tests and docs nobody loads there.
rm -rf .carry/node_modules/pino/test .carry/node_modules/pino/docs
find .carry/node_modules/zod -name '*.cjs' -delete
find .carry/node_modules -name '*.md' -delete
find .carry -name '*.d.ts' -o -name '*.d.cts' -o -name '*.d.mts' -o -name '*.map' | xargs rm -f
[ -f ../shared/data/tinyshakespeare.txt ] && cp ../shared/data/tinyshakespeare.txt .carry/
du -sh .device .carry dist build/Release
