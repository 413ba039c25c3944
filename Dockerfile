# Tachyon images. CPU: `docker build --target cpu -t tachyon:cpu .`
# CUDA: `docker build --target cuda -t tachyon:cuda .` (builds the CUDA backend once it is in native/cuda).

# ---- build (CPU) ------------------------------------------------------------
FROM node:20-bookworm AS build
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
# A portable instruction set instead of the build machine's (-march=native).
ENV TACHYON_MARCH=x86-64-v3
COPY . .
RUN npm ci && npm prune --omit=dev

# ---- cpu runtime ------------------------------------------------------------
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
FROM nvidia/cuda:13.0.0-devel-ubuntu24.04 AS build-cuda
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY --from=node:20-bookworm /usr/local/bin/node /usr/local/bin/node
COPY --from=node:20-bookworm /usr/local/lib/node_modules /usr/local/lib/node_modules
RUN ln -s /usr/local/lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm
ENV TACHYON_MARCH=x86-64-v3
COPY . .
RUN npm ci && npm prune --omit=dev

# ---- cuda runtime -----------------------------------------------------------
FROM nvidia/cuda:13.0.0-runtime-ubuntu24.04 AS cuda
WORKDIR /app
COPY --from=node:20-bookworm /usr/local/bin/node /usr/local/bin/node
COPY --from=build-cuda /app/package.json ./
COPY --from=build-cuda /app/node_modules ./node_modules
COPY --from=build-cuda /app/dist ./dist
COPY --from=build-cuda /app/build/Release/tachyon_native.node ./build/Release/
COPY --from=build-cuda /app/models ./models
ENV TACHYON_HOST=0.0.0.0 TACHYON_PORT=8000 NODE_ENV=production
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s \
  CMD node -e "fetch('http://127.0.0.1:8000/ready').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"
CMD ["node", "dist/app/main.js"]
