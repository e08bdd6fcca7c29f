"""Real recorded human speech that installs offline: the Dutch (and Czech) dialogs of Fish Fillets NG.

Czech: ``fillets-ng-data-cs``, ``SOUND_DIR/LEVEL/cs/NAME.ogg`` and ``dialogs_cs.lua``, the same layout.

Debian's ``fillets-ng-data-nl`` holds the recordings (``SOUND_DIR/LEVEL/nl/NAME.ogg``, 22.05 kHz
stereo Ogg Vorbis) and ``fillets-ng-data`` the scripts: in ``SCRIPT_DIR/LEVEL/dialogs_nl.lua``
each ``dialogId("NAME", "FONT", "English")`` is followed by ``dialogStr("Dutch")``. The font
names the voice (``font_small`` and ``font_big`` are the two fish, the main voices). A level
shares its vocabulary, so the demo keeps whole levels in one split.

``write_table`` writes a corpus table (``path``, ``text``, ``level``, ``voice``, ``english``) that
``d2v prepare speech`` and ``d2v demo speech --corpus`` read.
"""

import glob
import os
import re
from typing import Dict, Tuple

from ..modules.errors import InputError

SOUND_DIR = "/usr/share/games/fillets-ng/sound"
SCRIPT_DIR = "/usr/share/games/fillets-ng/script"
PACKAGES = "fillets-ng-data fillets-ng-data-nl"  # the Dutch demo's; Czech: fillets-ng-data-cs

_STRING = r'"((?:[^"\\]|\\.)*)"'
DIALOG = re.compile(r"dialogId\(\s*" + _STRING + r"\s*,\s*" + _STRING + r"\s*,\s*" + _STRING + r"\s*\)\s*"
                    r"dialogStr\(\s*" + _STRING + r"\s*\)")


def unescape(text: str) -> str:
    """A Lua string literal's escapes (``\\"``, ``\\/``, ``\\\\``, ``\\n``) resolved."""
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), text)


def packages(language: str) -> str:
    """The Debian packages holding a language's recordings and the scripts."""
    return f"fillets-ng-data fillets-ng-data-{language}"


def read_dialogs(script_dir: str = SCRIPT_DIR, language: str = "nl") -> Dict[Tuple[str, str], Tuple[str, str, str]]:
    """(level, name) -> (voice, text in ``language``, English text) from every ``dialogs_LANGUAGE.lua``."""
    files = sorted(glob.glob(os.path.join(script_dir, "*", f"dialogs_{language}.lua")))
    if not files:
        raise InputError(f"no */dialogs_{language}.lua: install Debian's {packages(language)} (apt-get install "
                         f"{packages(language)}; `make demo-real-speech` does it for Dutch)", path=script_dir)
    dialogs = {}
    for path in files:
        level = os.path.basename(os.path.dirname(path))
        with open(path, encoding="utf-8") as f:
            for name, voice, english, dutch in DIALOG.findall(f.read()):
                dialogs[(level, unescape(name))] = (voice, unescape(dutch), unescape(english))
    return dialogs


def write_table(out_path: str, sound_dir: str = SOUND_DIR, script_dir: str = SCRIPT_DIR,
                language: str = "nl") -> Dict[str, int]:
    """Writes the corpus table of every recording in ``language`` with its transcript; returns
    counts: recordings, with a transcript, without one (left out of the table), levels."""
    recordings = sorted(glob.glob(os.path.join(sound_dir, "*", language, "*.ogg")))
    if not recordings:
        raise InputError(f"no */{language}/*.ogg: install Debian's {packages(language)}", path=sound_dir)
    dialogs = read_dialogs(script_dir, language)
    rows, missing = [], []
    for path in recordings:
        level = os.path.basename(os.path.dirname(os.path.dirname(path)))
        name = os.path.splitext(os.path.basename(path))[0]
        if (level, name) not in dialogs:
            missing.append(path)
            continue
        voice, dutch, english = dialogs[(level, name)]
        rows.append((path, " ".join(dutch.split()), level, voice, " ".join(english.split())))
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "w", encoding="utf-8") as f:
        for row in [("path", "text", "level", "voice", "english"), *rows]:
            f.write("\t".join(row) + "\n")  # the texts' whitespace is collapsed: no tab inside a field
    return {"recordings": len(recordings), "with transcript": len(rows), "without transcript": len(missing),
            "levels": len({r[2] for r in rows})}
