import { execFileSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { dirname, join, posix, relative, resolve } from 'node:path';

const ROOT = resolve(__dirname, '../..');
/** The README is a page that sells and starts; the rest belongs in docs/. */
const README_LIMIT = 12_000;
/** Tracked files too large or too generated to hold a path anyone wrote. */
const NOT_SCANNED = new Set(['package-lock.json']);

/**
 * The repository's files as git lists them (paths with `/`): tracked ones, and new ones not yet
 * added that .gitignore lets in, so a page is checked before its first commit too.
 */
const trackedFiles = (): string[] => {
  const listed = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  return [...new Set(listed.split('\0').filter(Boolean))];
};

/** Git's own test for a binary file: a NUL byte near its start. */
const isText = (bytes: Buffer): boolean => !bytes.subarray(0, 8000).includes(0);

/** Markdown without its fenced code blocks (examples, diagrams). */
const withoutCodeBlocks = (markdown: string): string => markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '');

/** Markdown with its code blocks and code spans blanked, so examples are never taken for links. */
const proseOf = (markdown: string): string => withoutCodeBlocks(markdown).replace(/(`+)[^`\n]*?\1/g, '');

/** Every link target of a Markdown text: inline links, images and reference definitions. */
function linkTargetsOf(markdown: string): string[] {
  const prose = proseOf(markdown);
  const inline = [...prose.matchAll(/!?\[(?:[^[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)];
  const references = [...prose.matchAll(/^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)/gm)];
  return [...inline, ...references].map(([, target]) => target);
}

/** The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces as hyphens. */
function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const [, heading] of withoutCodeBlocks(markdown).matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const text = heading.replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1').replace(/[`*]/g, '');
    const slug = text
      .toLowerCase()
      .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
      .replace(/ /g, '-');
    const count = seen.get(slug) ?? 0;
    anchors.add(count === 0 ? slug : `${slug}-${count}`);
    seen.set(slug, count + 1);
  }
  return anchors;
}

/**
 * The relative links of a Markdown file that lead nowhere in the repository: outside it, to no
 * tracked file or folder, or to a heading its page does not have.
 */
function brokenLinksOf(file: string, tracked: Set<string>): string[] {
  const folders = new Set(
    [...tracked].flatMap((path) => path.split('/').map((_, i, parts) => parts.slice(0, i).join('/'))),
  );
  const markdown = readFileSync(join(ROOT, file), 'utf8');
  const broken: string[] = [];
  for (const target of linkTargetsOf(markdown)) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto: … point outside on purpose
    const [path, anchor] = target.split('#', 2);
    const resolved = path === '' ? file : posix.normalize(posix.join(posix.dirname(file), decodeURI(path)));
    const inRepository = !resolved.startsWith('../') && resolved !== '..';
    const exists = tracked.has(resolved) || folders.has(resolved.replace(/\/$/, ''));
    if (!inRepository || !exists) {
      broken.push(`${file}: ${target} (no such file in the repository)`);
    } else if (anchor !== undefined && resolved.endsWith('.md')) {
      const page = resolved === file ? markdown : readFileSync(join(ROOT, resolved), 'utf8');
      if (!anchorsOf(page).has(anchor)) broken.push(`${file}: ${target} (no such heading)`);
    }
  }
  return broken;
}

/** Relative paths in a file's text that lead out of the repository, read from the file's folder. */
function pathsOutOfRepositoryIn(file: string, text: string): string[] {
  const climbs = text.matchAll(/(?<![\w./~-])\.\.(?:\/\.\.)*(?=\/|[^\w.]|$)/g);
  return [...climbs]
    .filter(([climb]) => relative(ROOT, resolve(ROOT, dirname(file), climb)).startsWith('..'))
    .map(({ index }) => `${file}:${text.slice(0, index).split('\n').length}: ${text.slice(index).split('\n')[0]}`);
}

describe('Documentation', () => {
  const tracked = trackedFiles();

  it(`should keep README.md within ${README_LIMIT.toLocaleString('en')} characters, as wc -c counts them`, () => {
    expect(statSync(join(ROOT, 'README.md')).size).toBeLessThanOrEqual(README_LIMIT);
  });

  it('should point every relative link of the Markdown pages (README, docs/ …) at a file and heading of the repository', () => {
    const pages = tracked.filter((file) => file.endsWith('.md'));
    expect(pages).toEqual(expect.arrayContaining(['README.md', 'docs/api.md']));
    const trackedSet = new Set(tracked);
    expect(pages.flatMap((page) => brokenLinksOf(page, trackedSet))).toEqual([]);
  });

  it('should name no path that climbs out of the repository in any tracked text file', () => {
    const outside = tracked
      .filter((file) => !NOT_SCANNED.has(file))
      .flatMap((file) => {
        const bytes = readFileSync(join(ROOT, file));
        return isText(bytes) ? pathsOutOfRepositoryIn(file, bytes.toString('utf8')) : [];
      });
    expect(outside).toEqual([]);
  });
});

describe('The documentation checks themselves', () => {
  it('should find inline links, images and reference definitions, and none inside code', () => {
    const markdown = [
      'See [the API](docs/api.md#errors), ![a picture](docs/playground.png) and [`code`](src/main.ts "title").',
      '[ref]: docs/storage.md',
      '`[not a link](nowhere.md)`',
      '```sh',
      '[not a link either](nowhere.md)',
      '```',
    ].join('\n');
    expect(linkTargetsOf(markdown)).toEqual([
      'docs/api.md#errors',
      'docs/playground.png',
      'src/main.ts',
      'docs/storage.md',
    ]);
  });

  it("should give headings GitHub's anchors", () => {
    const anchors = anchorsOf(
      "# Behind a load balancer: `TRUST_PROXY`\n## How a chat's turns stay in order\n## Notes\n## Notes",
    );
    expect([...anchors]).toEqual([
      'behind-a-load-balancer-trust_proxy',
      'how-a-chats-turns-stay-in-order',
      'notes',
      'notes-1',
    ]);
  });

  it('should catch a path out of the repository and let paths within it pass', () => {
    // Paths out are built from pieces, so that this file does not hold what it looks for.
    const sibling = ['..', 'shared', 'api.md'].join('/');
    expect(pathsOutOfRepositoryIn('README.md', `The contract is [\`${sibling}\`](${sibling}).`)).toHaveLength(2);
    expect(
      pathsOutOfRepositoryIn('test/support/x.ts', `resolve(__dirname, '${['..', '..', '..'].join('/')}')`),
    ).toHaveLength(1);
    expect(
      pathsOutOfRepositoryIn('src/chats/dto/x.ts', "import { IsId } from '../../common/validation/is-id';"),
    ).toEqual([]);
    expect(pathsOutOfRepositoryIn('test/support/x.ts', "resolve(__dirname, '../..')")).toEqual([]);
    expect(pathsOutOfRepositoryIn('docs/x.md', 'Spread [...items] and ranges 1..2 are no paths.')).toEqual([]);
  });
});
