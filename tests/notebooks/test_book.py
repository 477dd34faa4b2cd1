"""The static site: an index, one page per notebook, diagrams visible, sanity-check code hidden."""
import base64
import re

from nfteach.book import build


def svgs(page: str):
    """Inline SVG and SVG data URIs (nbconvert embeds image/svg+xml outputs as <img>)."""
    out = re.findall(r"<svg[\s>]", page)
    for b64 in re.findall(r'src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"', page):
        text = base64.b64decode(b64).decode("utf-8", "replace")
        if "<svg" in text and 'class="graph"' in text:   # a Graphviz drawing, not an icon
            out.append(text)
    return out


def test_book(course_run, tmp_path):
    steps, _ = course_run
    index = build(tmp_path, "sim", "5.10", steps=steps)
    text = index.read_text()
    for s in steps:
        assert f'href="{s.name}.html"' in text
        assert (tmp_path / f"{s.name}.html").is_file()
    assert "<code>sim</code>" in text and "<code>5.10</code>" in text
    page = (tmp_path / "03-dropped-syn.html").read_text()
    assert svgs(page), "the hook chain / packet path diagrams are in the page"
    assert 'assert q.observed == "no entry"' not in page, "sanity-check code is hidden"
    assert "nfteach lab" in page and "backend sim" in page
