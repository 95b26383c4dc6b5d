// Type-checks every dashboard of dashboards/ against Grafana's own TypeScript types
// (@grafana/schema, pinned in package.json to the Grafana version dashboards/README.md names).
//
// Each dashboard becomes a TypeScript file in which the dashboard is a `Dashboard` literal and
// each panel a `Panel<Options, FieldConfig>` literal of its own panel type, so that TypeScript
// checks the panel options too (excess properties included), then `tsc --noEmit` runs on them.
// A deliberately broken panel is checked first: the check must be able to fail.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..', '..');
const out = join(here, '.generated');
const raw = '@grafana/schema/dist/esm/raw/composable';

// Panel type -> [module, has a custom FieldConfig]
const PANEL_TYPES = {
  stat: ['stat/panelcfg/x/StatPanelCfg_types.gen', false],
  gauge: ['gauge/panelcfg/x/GaugePanelCfg_types.gen', false],
  bargauge: ['bargauge/panelcfg/x/BarGaugePanelCfg_types.gen', false],
  timeseries: ['timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen', true],
  table: ['table/panelcfg/x/TablePanelCfg_types.gen', true],
};

function source(dashboard) {
  const lines = [
    `import type { Dashboard, Panel, RowPanel } from '@grafana/schema';`,
    // The JSON model holds an enum's value ("absolute"), where the TypeScript types name the
    // enum (ThresholdsMode.Absolute): compare string enums as the union of their values.
    `type Json<T> = T extends string ? \`\${T}\` : T extends (infer U)[] ? Json<U>[] : T extends object ? { [K in keyof T]: Json<T[K]> } : T;`,
  ];
  for (const [type, [module]] of Object.entries(PANEL_TYPES)) {
    lines.push(`import type * as ${type} from '${raw}/${module}';`);
  }
  const names = [];
  const walk = (panels) => {
    for (const panel of panels ?? []) {
      const name = `panel${names.length}`;
      names.push(name);
      if (panel.type === 'row') {
        lines.push(`const ${name}: Json<RowPanel> = ${JSON.stringify(panel, null, 1)};`);
        continue;
      }
      const known = PANEL_TYPES[panel.type];
      if (!known) {
        throw new Error(`panel ${JSON.stringify(panel.title)}: no type mapping for panel type ${panel.type}`);
      }
      const fieldConfig = known[1] ? `${panel.type}.FieldConfig` : 'Record<string, unknown>';
      lines.push(`// ${panel.title}`);
      // Panel<TOptions> does not apply TOptions to `options` (Grafana 10.4's types): do it here.
      lines.push(`const ${name}: Json<Omit<Panel<Record<string, unknown>, ${fieldConfig}>, 'options'> & { options?: ${panel.type}.Options }> = ${JSON.stringify(panel, null, 1)};`);
    }
  };
  walk(dashboard.panels);
  const rest = { ...dashboard };
  delete rest.panels;
  // `__requires` is export metadata, not part of the dashboard model.
  delete rest.__requires;
  const body = JSON.stringify(rest, null, 1).replace(/\n}$/, `,\n "panels": [${names.join(', ')}]\n}`);
  lines.push(`export const dashboard: Json<Omit<Dashboard, 'panels'>> & { panels: unknown[] } = ${body};`);
  return lines.join('\n') + '\n';
}

function tsc(files) {
  const bin = join(here, 'node_modules', 'typescript', 'bin', 'tsc');
  const args = [bin, '--noEmit', '--strict', '--skipLibCheck', '--module', 'esnext', '--moduleResolution', 'node',
    '--target', 'es2020', ...files];
  try {
    execFileSync(process.execPath, args, { cwd: here, encoding: 'utf8', stdio: 'pipe' });
    return '';
  } catch (e) {
    return (e.stdout || '') + (e.stderr || '') || String(e);
  }
}

rmSync(out, { recursive: true, force: true });
mkdirSync(out);
let failed = 0;

// The check must fail on the finding that motivated it: a table footer's `fields` as "".
const broken = {
  title: 'broken', panels: [{ type: 'table', title: 'broken', gridPos: { x: 0, y: 0, w: 1, h: 1 },
    options: { showHeader: true, cellHeight: 'sm', footer: { show: false, reducer: ['sum'], fields: '' } } }],
  schemaVersion: 39,
};
writeFileSync(join(out, 'broken.ts'), source(broken));
const brokenErrors = tsc([join(out, 'broken.ts')]);
if (brokenErrors.includes("not assignable to type 'string[]'")) {
  console.log('PASS: the type-check rejects a table footer with fields ""');
} else {
  failed++;
  console.log(`FAIL: the type-check accepted a table footer with fields ""\n${brokenErrors}`);
}

const dashboards = readdirSync(join(root, 'dashboards')).filter((f) => f.endsWith('.json')).sort();
for (const file of dashboards) {
  const dashboard = JSON.parse(readFileSync(join(root, 'dashboards', file), 'utf8'));
  const ts = join(out, file.replace(/\.json$/, '.ts'));
  writeFileSync(ts, source(dashboard));
  const errors = tsc([ts]);
  if (errors) {
    failed++;
    console.log(`FAIL: ${file} against @grafana/schema\n${errors.replace(/^/gm, '      ')}`);
  } else {
    console.log(`PASS: ${file} against @grafana/schema`);
  }
}
if (!failed) {
  rmSync(out, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
