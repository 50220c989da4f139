// Layers (see ARCHITECTURE.md): lib/core <- lib/workers, lib/nest <- lib/redis, lib/health, lib/metrics. A layer
// imports only the layers below it; the boundaries below make lint fail when an import points up or sideways.
// Two edges point up on purpose, each at one seam: the cluster (lib/core/cluster/) starts the worker threads of
// `strategy: { type: 'workers' }` (and lib/core/index.ts exports the worker module's path), and the module (lib/nest/gateway.module.ts) loads the Redis scale-out when
// `redis` is configured (lazily, so the main entry never loads ioredis). Elsewhere in the core, lib/workers may
// be named in types only.

const PACKAGE_HOME = { '@nestjs/*': 'lib/nest, lib/redis, lib/health and lib/metrics', ioredis: 'lib/redis', 'prom-client': 'lib/metrics' };
const GRAPH = 'core <- workers, nest <- redis, health, metrics';

/**
 * The rules that keep the files of one layer (`from`) off the packages and layer folders it may not use. Imports
 * are checked by no-restricted-imports (relative paths by folder name: under lib/ a folder named after a layer is
 * that layer), require() and import() by no-restricted-syntax. `typesOnly` layers may be named in `import type`.
 */
function boundary(from, { packages, layers, typesOnly = [] }) {
  const packagePatterns = packages.map((name) => ({
    group: [name, `${name}/*`],
    message: `${name} is imported only in ${PACKAGE_HOME[name]}, not in lib/${from} (see ARCHITECTURE.md).`,
  }));
  const layerPatterns = [...layers, ...typesOnly].map((to) => ({
    group: [`**/${to}`, `**/${to}/**`],
    message: `lib/${from} may not import lib/${to}${typesOnly.includes(to) ? ' except types' : ''} (layers: ${GRAPH}; see ARCHITECTURE.md).`,
    allowTypeImports: typesOnly.includes(to),
  }));
  const callPatterns = [
    ...packages.map((name) => ({ regex: `^${name.replace('/*', '')}(\\/|$)`, what: name })),
    ...[...layers, ...typesOnly].map((to) => ({ regex: `\\/${to}(\\/|$)`, what: `lib/${to}` })),
  ];
  return {
    '@typescript-eslint/no-restricted-imports': ['error', { patterns: [...packagePatterns, ...layerPatterns] }],
    'no-restricted-syntax': [
      'error',
      ...callPatterns.flatMap(({ regex, what }) => [
        { selector: `CallExpression[callee.name='require'] > Literal.arguments[value=/${regex}/]`, message: `No require() of ${what} in lib/${from} (see ARCHITECTURE.md).` },
        { selector: `ImportExpression > Literal.source[value=/${regex}/]`, message: `No import() of ${what} in lib/${from} (see ARCHITECTURE.md).` },
      ]),
    ],
  };
}

module.exports = {
  root: true,
  parser: '@typescript-eslint/parser',
  parserOptions: {
    project: './tsconfig.json',
    tsconfigRootDir: __dirname,
    sourceType: 'module',
  },
  plugins: ['@typescript-eslint'],
  extends: [
    'eslint:recommended',
    'plugin:@typescript-eslint/recommended',
  ],
  env: {
    node: true,
  },
  ignorePatterns: ['dist/', 'node_modules/', '.eslintrc.js', 'scripts/'],
  rules: {
    '@typescript-eslint/no-floating-promises': 'error',
    '@typescript-eslint/no-explicit-any': 'off',
    '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    'no-console': 'error',
  },
  overrides: [
    {
      files: ['lib/core/**/*.ts'],
      rules: boundary('core', { packages: ['@nestjs/*', 'ioredis', 'prom-client'], layers: ['nest', 'redis', 'health', 'metrics'], typesOnly: ['workers'] }),
    },
    {
      // The cluster chooses the sharding strategy, so it may start the worker pool of lib/workers; the core's entry
      // exports the path of the worker module (`shardWorkerEntry`) for a `strategy.workerEntry` of one's own.
      files: ['lib/core/cluster/**/*.ts', 'lib/core/index.ts'],
      rules: boundary('core', { packages: ['@nestjs/*', 'ioredis', 'prom-client'], layers: ['nest', 'redis', 'health', 'metrics'] }),
    },
    {
      files: ['lib/workers/**/*.ts'],
      rules: boundary('workers', { packages: ['@nestjs/*', 'ioredis', 'prom-client'], layers: ['nest', 'redis', 'health', 'metrics'] }),
    },
    {
      files: ['lib/nest/**/*.ts'],
      rules: boundary('nest', { packages: ['ioredis', 'prom-client'], layers: ['redis', 'health', 'metrics'] }),
    },
    {
      // The module loads the Redis scale-out (IGatewayScaleOut) when `redis` is configured, with a lazy require.
      files: ['lib/nest/gateway.module.ts'],
      rules: boundary('nest', { packages: ['ioredis', 'prom-client'], layers: ['health', 'metrics'] }),
    },
    {
      files: ['lib/redis/**/*.ts'],
      rules: boundary('redis', { packages: ['prom-client'], layers: ['health', 'metrics'] }),
    },
    {
      files: ['lib/health/**/*.ts'],
      rules: boundary('health', { packages: ['ioredis', 'prom-client'], layers: ['redis', 'metrics'] }),
    },
    {
      files: ['lib/metrics/**/*.ts'],
      rules: boundary('metrics', { packages: ['ioredis'], layers: ['redis', 'health'] }),
    },
  ],
};
