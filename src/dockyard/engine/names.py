"""Names for containers that were created without one: Docker's "adjective_surname" style
(pkg/namesgenerator), from word lists of our own."""

from __future__ import annotations

import secrets
from typing import Callable

ADJECTIVES = (
    "admiring", "affectionate", "agitated", "amazing", "angry", "awesome", "blissful", "bold",
    "brave", "busy", "charming", "clever", "compassionate", "competent", "confident", "cool",
    "dazzling", "determined", "dreamy", "eager", "ecstatic", "elastic", "elated", "elegant",
    "epic", "exciting", "fervent", "festive", "focused", "friendly", "frosty", "funny",
    "gallant", "gifted", "goofy", "gracious", "happy", "hardcore", "heuristic", "hopeful",
    "hungry", "infallible", "inspiring", "jolly", "jovial", "keen", "kind", "laughing",
    "loving", "lucid", "magical", "modest", "musing", "mystifying", "naughty", "nervous",
    "nice", "nifty", "nostalgic", "objective", "optimistic", "peaceful", "pedantic", "pensive",
    "practical", "priceless", "quirky", "quizzical", "relaxed", "reverent", "romantic", "sad",
    "serene", "sharp", "silly", "sleepy", "stoic", "strange", "stupefied", "suspicious",
    "sweet", "tender", "thirsty", "trusting", "unruffled", "upbeat", "vibrant", "vigilant",
    "vigorous", "wizardly", "wonderful", "xenodochial", "youthful", "zealous", "zen",
)
SURNAMES = (
    "agnesi", "albattani", "allen", "archimedes", "babbage", "banach", "bardeen", "bartik",
    "bell", "bhabha", "blackwell", "bohr", "boole", "booth", "borg", "bose", "brahmagupta",
    "brattain", "carson", "cerf", "chandrasekhar", "chaum", "clarke", "colden", "cori",
    "curie", "darwin", "davinci", "dijkstra", "dubinsky", "easley", "einstein", "elion",
    "engelbart", "euclid", "euler", "fermat", "fermi", "feynman", "franklin", "galileo",
    "gauss", "goldberg", "goodall", "gould", "hamilton", "hawking", "heisenberg", "hodgkin",
    "hofstadter", "hopper", "hypatia", "jackson", "jennings", "johnson", "kalam", "kapitsa",
    "keller", "kepler", "knuth", "kowalevski", "lamarr", "lamport", "leakey", "leavitt",
    "lovelace", "lumiere", "mayer", "mccarthy", "mcclintock", "meitner", "mendel", "mirzakhani",
    "morse", "napier", "newton", "nobel", "noether", "pascal", "pasteur", "payne", "perlman",
    "pike", "poincare", "ritchie", "rosalind", "sammet", "shannon", "shockley", "sinoussi",
    "stonebraker", "swanson", "tesla", "thompson", "torvalds", "turing", "varahamihira",
    "villani", "wescoff", "williams", "wilson", "wing", "wozniak", "wright", "yalow", "yonath",
)


def generate(taken: Callable[[str], bool]) -> str:
    for attempt in range(64):
        name = f"{secrets.choice(ADJECTIVES)}_{secrets.choice(SURNAMES)}"
        if attempt >= 8:  # as Docker: a digit after a few collisions
            name += str(secrets.randbelow(10))
        if not taken(name):
            return name
    raise RuntimeError("could not find a free container name")
