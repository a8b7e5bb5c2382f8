# One image for the six services; the command picks the service, e.g.
#   docker run im node packages/chat/src/main.ts
# Node 24 runs the TypeScript sources directly (type stripping); only the web client is built.
FROM node:24.21.0-slim
WORKDIR /app
ENV NODE_ENV=production LOG_FORMAT=json
COPY package.json package-lock.json ./
COPY packages ./packages
COPY proto ./proto
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund
# The web client the api service serves at / (WEB_DIR, default packages/web/dist).
RUN npm run build
USER node
CMD ["node", "packages/api/src/main.ts"]
