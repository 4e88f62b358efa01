"""First names for the symbolic tasks (last letter, coin flip), and name pools from a file.

``COMMON_US_FIRST_NAMES`` is a built-in list of common US first names (male and female,
one word each), written from general knowledge. A larger list, e.g. the top names per
gender that the RaR / Kojima generators drew from, can be given as ``task.options.names_file``.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from ..errors import DataError

COMMON_US_FIRST_NAMES: tuple[str, ...] = (
    # male
    "James", "John", "Robert", "Michael", "William", "David", "Richard", "Joseph", "Thomas", "Charles",
    "Christopher", "Daniel", "Matthew", "Anthony", "Mark", "Donald", "Steven", "Paul", "Andrew", "Joshua",
    "Kenneth", "Kevin", "Brian", "George", "Timothy", "Ronald", "Edward", "Jason", "Jeffrey", "Ryan",
    "Jacob", "Gary", "Nicholas", "Eric", "Jonathan", "Stephen", "Larry", "Justin", "Scott", "Brandon",
    "Benjamin", "Samuel", "Gregory", "Alexander", "Frank", "Patrick", "Raymond", "Jack", "Dennis", "Jerry",
    "Tyler", "Aaron", "Jose", "Adam", "Nathan", "Henry", "Douglas", "Zachary", "Peter", "Kyle",
    "Ethan", "Walter", "Noah", "Jeremy", "Christian", "Keith", "Roger", "Terry", "Austin", "Sean",
    "Gerald", "Carl", "Harold", "Dylan", "Arthur", "Lawrence", "Jordan", "Jesse", "Bryan", "Billy",
    "Bruce", "Gabriel", "Logan", "Alan", "Juan", "Wayne", "Elijah", "Randy", "Vincent", "Mason",
    # female
    "Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Barbara", "Susan", "Jessica", "Sarah", "Karen",
    "Lisa", "Nancy", "Betty", "Sandra", "Margaret", "Ashley", "Kimberly", "Emily", "Donna", "Michelle",
    "Carol", "Amanda", "Melissa", "Deborah", "Stephanie", "Dorothy", "Rebecca", "Sharon", "Laura", "Cynthia",
    "Amy", "Kathleen", "Angela", "Shirley", "Brenda", "Emma", "Anna", "Pamela", "Nicole", "Samantha",
    "Katherine", "Christine", "Helen", "Debra", "Rachel", "Carolyn", "Janet", "Maria", "Catherine", "Heather",
    "Diane", "Olivia", "Julie", "Joyce", "Victoria", "Ruth", "Virginia", "Lauren", "Kelly", "Christina",
    "Joan", "Evelyn", "Judith", "Andrea", "Hannah", "Megan", "Cheryl", "Jacqueline", "Martha", "Madison",
    "Teresa", "Gloria", "Sara", "Janice", "Ann", "Kathryn", "Abigail", "Sophia", "Frances", "Jean",
    "Alice", "Judy", "Isabella", "Julia", "Grace", "Amber", "Denise", "Danielle", "Marilyn", "Beverly",
)

_ONE_WORD = re.compile(r"[^\W\d_]+")


def load_names(names_file: str | None, top_n: int = 220) -> list[str]:
    """The name pool: built-in, or from a JSON list of names / ``{"M": [...], "F": [...]}``.

    With M/F lists, takes the ``top_n`` first names of each gender, male list first (the
    RaR / Kojima scheme). Only one-word, letters-only names are kept; duplicates are dropped.
    """
    if names_file is None:
        raw: list = list(COMMON_US_FIRST_NAMES)
    else:
        path = Path(names_file).expanduser()
        if not path.is_file():
            raise DataError(f"names file not found: {path}; fix task.options.names_file or remove it to use "
                            "the built-in names")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: invalid JSON ({e.msg}); names_file must be a JSON list of names or "
                            "{\"M\": [...], \"F\": [...]}") from None
        if isinstance(data, dict) and isinstance(data.get("M"), list) and isinstance(data.get("F"), list):
            raw = data["M"][:top_n] + data["F"][:top_n]
        elif isinstance(data, list):
            raw = data
        else:
            raise DataError(f"{path}: names_file must be a JSON list of names or {{\"M\": [...], \"F\": [...]}}")
    names = list(dict.fromkeys(n.strip() for n in raw if isinstance(n, str) and _ONE_WORD.fullmatch(n.strip())))
    return names


def checked_name_pool(options, wordings: int, count_field: str) -> list[str]:
    """Validate the options the name-based tasks share; return their name pool."""
    from ..errors import ConfigError

    if not 0 <= options.instruction < wordings:
        raise ConfigError(f"task.options.instruction must be in 0..{wordings - 1}, got {options.instruction}")
    if not 0.0 < options.eval_fraction < 1.0:
        raise ConfigError(f"task.options.eval_fraction must be in (0, 1), got {options.eval_fraction}")
    pool = load_names(options.names_file, options.top_n)
    count = getattr(options, count_field)
    if count < 1 or len(pool) < count:
        raise ConfigError(f"task.options.{count_field} must be in 1..{len(pool)} (the name pool size), got {count}")
    return pool
