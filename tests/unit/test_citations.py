"""Every Chinese phrase presented as the article's words appears in the article, verbatim.

The convention, stated once (00_overview's glossary and the README repeat it):

* any run of Chinese characters in a notebook, a solution, the README or the package is the
  article's own words and must appear verbatim in ``../shared/article_zh.txt``;
* a run followed directly by ``†`` is our translation (a glossary term the article does not use)
  and is exempt;
* a span in 「」 that holds Chinese is a quotation and must appear verbatim *as a whole*, Latin letters and digits
  included (「准确率、召回率、F1值」).

The English beside a quotation is our paraphrase.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTICLE = Path(os.environ.get("MTREC_ARTICLE", ROOT.parent / "shared" / "article_zh.txt"))
HAN = "\u3400-\u4dbf\u4e00-\u9fff"
# A run: Han characters, possibly joined by the article's Chinese punctuation (、，。：；).
RUN = re.compile(f"[{HAN}](?:[{HAN}、，。：；]*[{HAN}])?(†)?")
QUOTE = re.compile(r"「([^」]*)」")


def sources() -> list[tuple[str, str]]:
    """(where, text) for every cell of every notebook, every solution, the README and the package."""
    out = []
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in json.loads(nb.read_text(encoding="utf-8"))["cells"]:
            out.append((f"{nb.name} cell {cell.get('id')}", "".join(cell["source"])))
    files = [ROOT / "README.md", *sorted((ROOT / "notebooks" / "solutions").glob("*.md")),
             *sorted((ROOT / "mtrec_study").rglob("*.py"))]
    out += [(str(f.relative_to(ROOT)), f.read_text(encoding="utf-8")) for f in files if f.exists()]
    return out


def quotations(text: str) -> list[str]:
    """The phrases of ``text`` that claim to be the article's words (see the module docstring)."""
    found = [m.group(1) for m in QUOTE.finditer(text) if re.search(f"[{HAN}]", m.group(1))]
    found += [m.group(0) for m in RUN.finditer(text) if not m.group(1)]
    return found


@pytest.fixture(scope="module")
def article() -> str:
    if not ARTICLE.exists():
        pytest.skip(f"the article is not at {ARTICLE} (set MTREC_ARTICLE to its path to run the citation check)")
    return ARTICLE.read_text(encoding="utf-8")


def test_the_extractor_follows_the_convention():
    text = "see 「准确率、召回率、F1值」, **§4 数学模型和公式**, 损失函数† and 精确率†"
    assert quotations(text) == ["准确率、召回率、F1值", "准确率、召回率", "值", "数学模型和公式"]


def test_every_chinese_quotation_is_verbatim(article):
    wrong, n = [], 0
    for where, text in sources():
        for q in quotations(text):
            n += 1
            if q not in article:
                wrong.append(f"{where}: {q}")
    assert n >= 50, f"only {n} quotations found: is the extractor still reading the notebooks?"
    assert not wrong, "not in the article verbatim (quote it exactly, or mark our translation with †):\n" + "\n".join(wrong)


def test_the_claims_of_07_quote_the_article(article):
    from mtrec_study.study.claims import ARTICLE_CLAIMS, claim_text

    for key, c in ARTICLE_CLAIMS.items():
        assert c["quote"] in article, key
        assert c["section"].startswith("§"), key
        assert claim_text(key).endswith(f"(「{c['quote']}」)")
    with pytest.raises(KeyError, match="valid"):
        claim_text("speed")


def test_no_precision_is_attributed_to_the_article():
    # The article lists 准确率、召回率、F1值 (§3.2 step 4); precision is ours, and must not be put in its mouth.
    pattern = re.compile(r"article[^.\n]{0,80}(accuracy[/, ]+precision|precision[/, ]+recall)", re.I)
    bad = [where for where, text in sources() if pattern.search(text)]
    assert not bad, f"precision attributed to the article in: {bad}"
