import { defineConfig } from 'vitest/config';

// The desktop shell loads the built files from ui/dist (see tauri.conf.json).
export default defineConfig({
  clearScreen: false,
  server: { port: 1420, strictPort: true },
  build: { target: 'es2021', outDir: 'dist', emptyOutDir: true },
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  test: { environment: 'jsdom', include: ['src/**/*.test.ts'] },
});
