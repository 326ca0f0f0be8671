import { createTheme, type CSSVariablesResolver, type MantineTheme } from '@mantine/core';

export const theme = createTheme({
  primaryColor: 'indigo',
  defaultRadius: 'md',
  fontFamily:
    'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans", sans-serif',
  fontFamilyMonospace:
    'ui-monospace, SFMono-Regular, Menlo, Monaco, Consolas, "Liberation Mono", monospace',
  focusRing: 'auto',
  // Progress bars, loaders and transitions stand still under prefers-reduced-motion.
  respectReducedMotion: true,
  components: {
    // Every dialog's and dismissable alert's close button gets a name (axe button-name).
    // (Plain objects, not Modal.extend(): the theme must not pull Modal into the first load.)
    Modal: { defaultProps: { closeButtonProps: { 'aria-label': 'Close' } } },
    Alert: { defaultProps: { closeButtonLabel: 'Dismiss' } },
    // The focus placeholder is a role="presentation" child of role="menu", which ARIA does
    // not allow (axe aria-required-children); arrow keys work from the menu itself.
    Menu: { defaultProps: { withInitialFocusPlaceholder: false } },
  },
});

/*
 * Readable colours (WCAG 2.1 AA: 4.5:1 for text). Mantine's defaults put mid shades on white
 * (muted text gray.6 is 3.3:1, indigo.6 filled buttons 4.3:1, green.9 on green.1 badges 3.8:1)
 * and dark.2 muted text on dark.6 cards (3.5:1). Rather than page by page, every colour
 * variable that carries text is nudged here, in each scheme, just as far as it takes to reach
 * 4.5:1 on every surface it is drawn on.
 */

const AA = 4.5;
/** Surfaces text sits on: body, default/hover backgrounds, table stripes, cards. */
const LIGHT_SURFACES = ['#ffffff', '#f8f9fa', '#f1f3f5'];
const DARK_SURFACES = ['#242424', '#2e2e2e', '#3b3b3b'];

type RGB = [number, number, number];

function rgb(hex: string): RGB {
  const h = hex.replace('#', '');
  return [0, 2, 4].map((i) => parseInt(h.slice(i, i + 2), 16)) as RGB;
}

function hex([r, g, b]: RGB): string {
  return `#${[r, g, b].map((v) => Math.round(v).toString(16).padStart(2, '0')).join('')}`;
}

function luminance(color: RGB): number {
  const [r, g, b] = color.map((v) => {
    const c = v / 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  }) as RGB;
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

/** The WCAG contrast ratio of two #rrggbb colours. */
export function contrast(a: string, b: string): number {
  const [x, y] = [luminance(rgb(a)), luminance(rgb(b))];
  return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05);
}

/**
 * `color`, darkened (toward black) or lightened (toward white) in small steps until it has at
 * least `ratio` contrast on every one of `surfaces`.
 */
export function readable(color: string, surfaces: string[], toward: 'black' | 'white', ratio = AA): string {
  const target: RGB = toward === 'black' ? [0, 0, 0] : [255, 255, 255];
  const start = rgb(color);
  for (let step = 0; step <= 20; step++) {
    const t = step / 20;
    const candidate = hex(start.map((v, i) => v + ((target[i] ?? v) - v) * t) as RGB);
    if (surfaces.every((s) => contrast(candidate, s) >= ratio)) return candidate;
  }
  return hex(target);
}

const WHITE = '#ffffff';

export const cssVariablesResolver: CSSVariablesResolver = (t: MantineTheme) => {
  const light: Record<string, string> = {};
  const dark: Record<string, string> = {};
  for (const [name, shades] of Object.entries(t.colors)) {
    if (name === 'dark') continue;
    // Filled buttons and badges carry white text.
    const filled = readable(shades[8], [WHITE], 'black');
    light[`--mantine-color-${name}-filled`] = filled;
    light[`--mantine-color-${name}-filled-hover`] = readable(filled, [WHITE], 'black', AA + 1);
    light[`--mantine-color-${name}-outline`] = readable(shades[8], LIGHT_SURFACES, 'black');
    light[`--mantine-color-${name}-text`] = readable(shades[8], LIGHT_SURFACES, 'black');
    // "light" variants: dark text on the pale tint (shade 1, shade 2 on hover).
    light[`--mantine-color-${name}-light-color`] = readable(shades[9], [shades[1], shades[2]], 'black');

    dark[`--mantine-color-${name}-filled`] = readable(shades[8], [WHITE], 'black');
    dark[`--mantine-color-${name}-filled-hover`] = readable(shades[9], [WHITE], 'black');
    dark[`--mantine-color-${name}-text`] = readable(shades[4], DARK_SURFACES, 'white');
    dark[`--mantine-color-${name}-outline`] = readable(shades[4], DARK_SURFACES, 'white');
  }
  const primary = t.colors[t.primaryColor] ?? t.colors.indigo;
  return {
    variables: {},
    light: {
      ...light,
      '--mantine-primary-color-contrast': WHITE,
      '--mantine-color-dimmed': readable(t.colors.gray[6], LIGHT_SURFACES, 'black'),
      '--mantine-color-anchor': readable(primary[8], LIGHT_SURFACES, 'black'),
      '--mantine-color-error': readable(t.colors.red[8], LIGHT_SURFACES, 'black'),
      '--mantine-color-success': readable(t.colors.teal[8], LIGHT_SURFACES, 'black'),
    },
    dark: {
      ...dark,
      '--mantine-primary-color-contrast': WHITE,
      '--mantine-color-dimmed': readable(t.colors.dark[2], DARK_SURFACES, 'white'),
      // Links also sit on the dark blue tint of informational alerts.
      '--mantine-color-anchor': readable(primary[3], [...DARK_SURFACES, '#0c3256'], 'white'),
      '--mantine-color-error': readable(t.colors.red[4], DARK_SURFACES, 'white'),
      '--mantine-color-success': readable(t.colors.teal[4], DARK_SURFACES, 'white'),
    },
  };
};
