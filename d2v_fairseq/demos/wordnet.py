"""English text that installs offline: WordNet's glosses (Debian's ``wordnet-base``).

Each synset line of ``/usr/share/wordnet/data.{noun,verb,adj,adv}`` carries its lexicographer
file number (its category: noun.animal, noun.food, ...) and, after ``|``, its gloss: a
definition, often followed by quoted examples. The text demo pre-trains on the glosses and
classifies a definition into its category.
"""

import os
import re
from typing import List, Tuple

WORDNET_DIR = "/usr/share/wordnet"
POS_FILES = ("noun", "verb", "adj", "adv")
# WordNet 3.0's lexicographer files, by number (wndb(5WN) "lexnames")
LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body "
    "noun.cognition noun.communication noun.event noun.feeling noun.food noun.group noun.location "
    "noun.motive noun.object noun.person noun.phenomenon noun.plant noun.possession noun.process "
    "noun.quantity noun.relation noun.shape noun.state noun.substance noun.time verb.body verb.change "
    "verb.cognition verb.communication verb.competition verb.consumption verb.contact verb.creation "
    "verb.emotion verb.motion verb.perception verb.possession verb.social verb.stative verb.weather adj.ppl"
).split()


def read_glosses(wordnet_dir: str = WORDNET_DIR) -> List[Tuple[str, str, str]]:
    """(definition, full gloss, category) for every synset, in file order.

    The definition is the gloss up to its first quoted example."""
    missing = [p for p in POS_FILES if not os.path.isfile(os.path.join(wordnet_dir, f"data.{p}"))]
    if missing:
        raise FileNotFoundError(f"{wordnet_dir}: no data.{missing[0]}; install Debian's wordnet-base "
                                "(apt-get install wordnet-base; `make demo-text` does it)")
    glosses = []
    for pos in POS_FILES:
        path = os.path.join(wordnet_dir, f"data.{pos}")
        with open(path, encoding="utf-8", errors="strict") as f:
            for number, line in enumerate(f, start=1):
                if line.startswith("  ") or "|" not in line:  # the license header
                    continue
                fields, gloss = line.split("|", 1)
                parts = fields.split()
                lex = int(parts[1])
                if not 0 <= lex < len(LEXNAMES):
                    raise ValueError(f"{path}:{number}: lexicographer file number {lex} is not in WordNet 3.0")
                gloss = gloss.strip()
                definition = re.split(r';\s*"', gloss, maxsplit=1)[0].strip().rstrip(";").strip()
                glosses.append((definition, gloss, LEXNAMES[lex]))
    return glosses
