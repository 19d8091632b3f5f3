# redis-llm-server: Redis plus LLM.* commands, in one image.
#
# The server runs in its managed mode: with no --redis URL it starts redis-server as its own
# child (unix socket only, appendonly on, data in /data/redis) and stops it on shutdown, so the
# container is one process tree with node as PID 1.
#
#   docker build -t redis-llm-server .
#   docker run -p 6379:6379 -v llmdata:/data -e OPENAI_API_KEY -e REDIS_LLM_REQUIREPASS redis-llm-server
#
# Clients need the password (REDIS_LLM_REQUIREPASS, or REDIS_LLM_REQUIREPASS_FILE naming a Docker
# secret file). Without one, protected mode (the default) refuses every client that does not
# connect from the container's own loopback, published ports included, and the log says so.
#
# SIGTERM waits up to shutdown-timeout (10 s) for in-flight replies, then stops redis-server:
# give `docker stop` more than its default 10 s (docker stop -t 30, compose stop_grace_period).
# A host directory bind-mounted on /data must be writable by uid 1000 (the image's `node` user).

# ---- build: compile the native addons (hnswlib-node, native/) and the TypeScript ------------------------
FROM node:20-bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
COPY scripts/build.mjs ./scripts/build.mjs
COPY src ./src
COPY native/graph.cc native/binding.gyp ./native/
# A full install: builds hnswlib-node with node-gyp, and the package's `prepare`
# (scripts/build.mjs) builds the vector engine (native/, on hnswlib's headers) and compiles the
# TypeScript into dist/ once.
RUN npm ci && test -f dist/src/cli.js && test -f native/build/Release/rlgraph.node
# Keep production dependencies only (the compiled addon stays in node_modules/hnswlib-node).
RUN npm prune --omit=dev

# ---- runtime: node + redis-server, no compilers ------------------------------------------------
FROM node:20-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server redis-tools \
 && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production
WORKDIR /app
# package.json is needed at run time: it makes dist/*.js ES modules ("type": "module").
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/native/build/Release/rlgraph.node ./native/build/Release/rlgraph.node
COPY redis.conf.example ./redis.conf.example
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME /data
EXPOSE 6379
STOPSIGNAL SIGTERM
# PING is answered by the server itself even while redis-server restarts; with a password it
# answers NOAUTH, which shows it is up just as well (the check needs no secret).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD redis-cli -p 6379 ping | grep -qE 'PONG|NOAUTH' || exit 1
CMD ["node", "--no-allocation-site-pretenuring", "dist/src/cli.js", "--bind", "0.0.0.0", "--port", "6379", "--dir", "/data"]
