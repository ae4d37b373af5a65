import vue from '@vitejs/plugin-vue'
import { defineConfig } from 'vitest/config'

// Built into the Python package (api/console), which the hub serves at /.
export default defineConfig({
  plugins: [vue()],
  build: { outDir: '../api/console', emptyOutDir: true, chunkSizeWarningLimit: 1500 },
  server: { proxy: { '/api': { target: 'http://127.0.0.1:8000', ws: true } } },
  test: { include: ['src/**/*.test.ts'] },
})
