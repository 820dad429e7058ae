"""mkdocs hooks of `make docs`: the measurement files beside docs/ become pages of the site.

FIDELITY.md, BENCHMARKS.md, RELIABILITY.md and CHANGELOG.md live at the root of the
repository (benchmarks and sessions write them there), and the guides link to them as
`../FIDELITY.md`, which is right when a guide is read on the forge. mkdocs only knows the
files under `docs_dir`, so these hooks add the four files as pages and point those links, and
the root files' own `docs/...` links, at the pages of the site. Nothing is copied into docs/.
"""

from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parent.parent
ROOT_PAGES = ("FIDELITY.md", "BENCHMARKS.md", "RELIABILITY.md", "CHANGELOG.md")


def on_files(files, config):
    for name in ROOT_PAGES:
        files.append(File.generated(config, name, abs_src_path=str(ROOT / name)))
    return files


def on_page_markdown(markdown, page, config, files):
    source = page.file.src_uri
    if source in ROOT_PAGES:
        # A root file links into docs/ from the root: on the site those files are at the top.
        return markdown.replace("](docs/", "](")
    depth = source.count("/")
    for name in ROOT_PAGES:
        markdown = markdown.replace(
            "](" + "../" * (depth + 1) + name, "](" + "../" * depth + name
        )
    return markdown
