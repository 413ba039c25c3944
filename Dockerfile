# Tachyon images.
# CPU:  docker build --target cpu -t tachyon:cpu .
# CUDA: docker build --target cuda -t tachyon:cuda .   (run with --gpus all; needs a driver for CUDA 13.0, 580 or newer)
# compose.yaml builds and runs either (the cuda service serves a model directory mounted from the host).

# ---- build (CPU) ------------------------------------------------------------
FROM node:20-bookworm AS build
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
# A portable instruction set instead of the build machine's (-march=native); node-gyp compiles
# against this image's Node headers (/usr/local/include/node) rather than downloading them.
ENV TACHYON_MARCH=x86-64-v3 npm_config_nodedir=/usr/local
COPY . .
# npm ci runs the install script (node-gyp: the addon; scripts/build-cuda.mjs, which skips here:
# no nvcc) and then prepare (tsc) while the dev dependencies are present; prune drops them after.
RUN npm ci && npm prune --omit=dev

# ---- cpu runtime ------------------------------------------------------------
# What `node dist/app/main.js` reads: package.json (native/binding.ts finds the package root by
# it), dist/ (tokenize-worker.js included), the addon, node_modules (tiktoken's wasm, the encoders)
# and models/ (the default model).
FROM node:20-bookworm-slim AS cpu
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/build/Release/tachyon_native.node ./build/Release/
COPY --from=build /app/models ./models
ENV TACHYON_HOST=0.0.0.0 TACHYON_PORT=8000 NODE_ENV=production
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s \
  CMD node -e "fetch('http://127.0.0.1:8000/ready').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"
USER node
CMD ["node", "dist/app/main.js"]

# ---- build (CUDA) -----------------------------------------------------------
# The devel image has nvcc and cuBLAS(Lt) headers and libraries under /usr/local/cuda, where
# scripts/build-cuda.mjs looks (the toolkit beside nvcc); CMake (3.24 or newer) comes from apt.
FROM nvidia/cuda:13.0.0-devel-ubuntu24.04 AS build-cuda
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ cmake && rm -rf /var/lib/apt/lists/*
COPY --from=node:20-bookworm /usr/local/bin/node /usr/local/bin/node
COPY --from=node:20-bookworm /usr/local/include/node /usr/local/include/node
COPY --from=node:20-bookworm /usr/local/lib/node_modules /usr/local/lib/node_modules
RUN ln -s /usr/local/lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm
# Ampere (A100), Ada (L4, L40S) and Hopper (H100, H200) SASS. TACHYON_REQUIRE_CUDA=1 fails the
# build when the CUDA backend does not compile instead of shipping an image without it.
ENV TACHYON_MARCH=x86-64-v3 npm_config_nodedir=/usr/local TACHYON_CUDA_ARCHS="80;89;90a" TACHYON_REQUIRE_CUDA=1
COPY . .
RUN npm ci \
  && { test -f build/cuda/libtachyon_cuda.so || { echo 'build/cuda/libtachyon_cuda.so was not built: see the "tachyon: CUDA backend" line above'; exit 1; }; } \
  && npm prune --omit=dev

# ---- cuda runtime -----------------------------------------------------------
# The runtime flavour carries cuBLAS and cuBLASLt (libcublasLt.so.13), which libtachyon_cuda.so
# links; the CUDA runtime itself is linked statically, and the driver comes from the host.
FROM nvidia/cuda:13.0.0-runtime-ubuntu24.04 AS cuda
WORKDIR /app
COPY --from=node:20-bookworm /usr/local/bin/node /usr/local/bin/node
COPY --from=build-cuda /app/package.json ./
COPY --from=build-cuda /app/node_modules ./node_modules
COPY --from=build-cuda /app/dist ./dist
COPY --from=build-cuda /app/build/Release/tachyon_native.node ./build/Release/
COPY --from=build-cuda /app/build/cuda/libtachyon_cuda.so ./build/cuda/
COPY --from=build-cuda /app/models ./models
ENV TACHYON_HOST=0.0.0.0 TACHYON_PORT=8000 TACHYON_DEVICE=cuda NODE_ENV=production
EXPOSE 8000
# Loading a large checkpoint and tuning the GEMMs takes minutes before /ready answers 200.
HEALTHCHECK --interval=10s --timeout=3s --start-period=300s \
  CMD node -e "fetch('http://127.0.0.1:8000/ready').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"
USER ubuntu
CMD ["node", "dist/app/main.js"]
