"""The default hazard lexicons: one conservative :class:`Blocklist` per hazard category of the
taxonomy, plus :data:`DEFAULT_PROFANITY`, ready for ``RuleFilter(DEFAULT_BLOCKLISTS)``.

Conservative means phrases rather than single words wherever a word has an innocent reading:
"kill yourself" and "i will kill you" but not "kill" ("kill the process"), "commit suicide" but
not "suicide" ("the suicide prevention hotline"), "build a bomb" but not "bomb" ("the show
bombed"). Single words appear only when they are hardly ever innocent ("subhuman", "blowjob").
Matching is on whole words after normalization (case, look-alikes, leetspeak, repeated and
spaced-out letters: see :mod:`.rules`), so "Scunthorpe", "cocktail", "assassin's creed" and
"therapist" stay clean, and an apostrophe splits words: "you're" is matched as "you re", with
"youre" listed separately.

The lists are written as small templates (a subject times a predicate) expanded at import. They
are a floor, not a classifier: context-dependent hazards ("you know what you did, watch your
back") need the ML classifier or a person. ``tests/data/moderation_eval.jsonl`` measures what
they catch and what they leave (see docs/moderation.md, "Quality (measured)").

There are no regex patterns here on purpose: a blocklist with patterns makes the rule filter
normalize every text, which costs the fast screen its speed.
"""

from __future__ import annotations

from collections.abc import Iterable

from keelwatch.monitoring.moderation.findings import Category
from keelwatch.monitoring.moderation.rules import DEFAULT_PROFANITY, Blocklist

__all__ = [
    "DEFAULT_BLOCKLISTS",
    "DEFAULT_PROFANITY",
    "HARASSMENT",
    "HATE",
    "ILLICIT",
    "SELF_HARM",
    "SEXUAL",
    "VIOLENCE",
]


def _expand(heads: Iterable[str], tails: Iterable[str]) -> tuple[str, ...]:
    """Every ``head tail`` phrase, in order, each once."""
    tails = tuple(tails)
    return tuple(dict.fromkeys(f"{head} {tail}" for head in heads for tail in tails))


# "you are", as people type it. "u r" works too: single letters stay words in a phrase.
_YOU_ARE = ("you are", "you re", "youre", "ur", "u r", "u are", "you r")
_I_WILL = (
    "i will",
    "i ll",
    "ill",
    "im going to",
    "i m going to",
    "i am going to",
    "im gonna",
    "i m gonna",
    "i am gonna",
    "i want to",
    "i wanna",
)
_INSULTS = (
    "worthless",
    "pathetic",
    "a loser",
    "a worthless",
    "a pathetic",
    "disgusting",
    "an idiot",
    "a moron",
    "a retard",
    "so stupid",
    "ugly",
    "so ugly",
    "a waste of space",
    "a waste of oxygen",
    "garbage",
    "trash",
    "a failure",
    "so pathetic",
    "so worthless",
    "so disgusting",
    "such a loser",
    "such an idiot",
    "a disgrace",
    "a freak",
    "a parasite",
    "vermin",
)

HARASSMENT = Blocklist(
    category=Category.HARASSMENT,
    name="harassment",
    keywords=(
        *_expand(_YOU_ARE, _INSULTS),
        "kill yourself",
        "kill urself",
        "kill your self",
        "kill yo self",
        "kys",
        "go die",
        "go and die",
        "go kill yourself",
        "neck yourself",
        "drink bleach",
        "hang yourself",
        "i hope you die",
        "hope you die",
        "hope you get cancer",
        "nobody likes you",
        "nobody loves you",
        "no one likes you",
        "no one loves you",
        "everyone hates you",
        "world would be better without you",
        "world is better without you",
        "shut up idiot",
        "shut up loser",
        "shut your mouth",
        "piece of garbage",
        "piece of trash",
        "worthless piece of",
        "waste of oxygen",
        "nobody would miss you",
        "no one would miss you",
    ),
)

# Clinical and minimal: dehumanizing predicates about a named group (a group is needed: "rats
# are vermin" is pest control), slogans, and a few slurs that have no innocent reading.
# Discussion of hate ("a talk on white supremacy") is not listed.
_GROUPS = (
    "immigrants",
    "migrants",
    "refugees",
    "muslims",
    "jews",
    "christians",
    "blacks",
    "whites",
    "asians",
    "mexicans",
    "arabs",
    "africans",
    "gays",
    "lesbians",
    "trans people",
    "women",
    "gypsies",
)
_GROUP_PREDICATES = (
    "are subhuman",
    "are vermin",
    "are parasites",
    "are cockroaches",
    "are animals",
    "are a disease",
    "are inferior",
    "are not human",
    "should be exterminated",
    "must be exterminated",
    "should be wiped out",
    "must be wiped out",
    "should be gassed",
    "do not deserve rights",
    "don t deserve rights",
    "dont deserve rights",
    "do not deserve to live",
    "don t deserve to live",
    "dont deserve to live",
)
HATE = Blocklist(
    category=Category.HATE,
    name="hate",
    keywords=(
        *_expand(_GROUPS, _GROUP_PREDICATES),
        "subhuman",
        "subhumans",
        "untermensch",
        "gas the jews",
        "go back to your country",
        "go back to where you came from",
        "go back where you came from",
        "heil hitler",
        "sieg heil",
        "white power",
        "race traitor",
        "race traitors",
        "mud people",
        "nigger",
        "niggers",
        "faggot",
        "faggots",
        "kike",
        "kikes",
        "wetback",
        "wetbacks",
        "raghead",
        "ragheads",
        "spic",
        "spics",
        "tranny",
        "trannies",
    ),
)

_URGES = (
    "want to",
    "wanna",
    "going to",
    "gonna",
    "need to",
    "thinking about",
    "thought about",
    "urge to",
    "keep",
)
SELF_HARM = Blocklist(
    category=Category.SELF_HARM,
    name="self-harm",
    keywords=(
        *_expand(_URGES, ("hurt myself", "cut myself", "hurting myself", "cutting myself")),
        "kill myself",
        "killing myself",
        "end my life",
        "ending my life",
        "end it all",
        "take my own life",
        "taking my own life",
        "want to die",
        "wanna die",
        "wish i was dead",
        "wish i were dead",
        "better off dead",
        "no reason to live",
        "nothing to live for",
        "commit suicide",
        "committing suicide",
        "feel suicidal",
        "feeling suicidal",
        "am suicidal",
        "im suicidal",
        "harm myself",
        "harming myself",
        "slit my wrists",
        "hang myself",
        "starve myself",
        "starving myself",
    ),
)

SEXUAL = Blocklist(
    category=Category.SEXUAL,
    name="sexual",
    keywords=(
        "porn",
        "porno",
        "blowjob",
        "blowjobs",
        "handjob",
        "handjobs",
        "nudes",
        "send nudes",
        "dick pic",
        "dick pics",
        "nude pics",
        "naked pics",
        "naked photos",
        "sexting",
        "horny",
        "orgasm",
        "orgasms",
        "masturbate",
        "masturbating",
        "masturbation",
        "sex tape",
        "hentai",
        "milf",
        "strip for me",
        "naked for me",
        *_expand(("show me your",), ("pussy", "dick", "cock", "tits", "boobs")),
        "suck my dick",
        "suck my cock",
        "sex with me",
        "sleep with me tonight",
        "sexy body",
        "erotic",
        "camgirl",
    ),
)

_VIOLENT_ACTS = (
    "kill you",
    "murder you",
    "stab you",
    "shoot you dead",
    "shoot you in the",
    "hurt you",
    "strangle you",
    "slit your throat",
    "burn your house",
    "burn down your house",
    "find you and",
    "kill your family",
    "kill them all",
    "kill everyone",
    "shoot up the",
)
VIOLENCE = Blocklist(
    category=Category.VIOLENCE,
    name="violence",
    keywords=(
        *_expand(_I_WILL, _VIOLENT_ACTS),
        "build a bomb",
        "make a bomb",
        "making a bomb",
        "build a pipe bomb",
        "pipe bomb",
        "pipe bombs",
        "make a pipe bomb",
        "shoot up a school",
        "shoot up the school",
        "school shooting plan",
        "beat you to death",
        "beat him to death",
        "beat her to death",
        "you are dead meat",
        "you re dead meat",
        "youre dead meat",
        "behead",
        "beheading",
        "molotov cocktail",
        "molotov cocktails",
    ),
)

_ILLICIT_VERBS = ("buy", "buying", "sell", "selling", "order", "get", "score")
_ILLICIT_GOODS = (
    "cocaine",
    "coke online",
    "heroin",
    "meth",
    "crystal meth",
    "fentanyl",
    "mdma",
    "lsd",
    "ecstasy pills",
    "xanax without a prescription",
    "oxycodone without a prescription",
    "oxy without a prescription",
    "stolen credit cards",
    "stolen cards",
    "credit card dumps",
    "fake passports",
    "a fake passport",
    "fake ids",
    "a fake id",
    "counterfeit money",
    "counterfeit bills",
    "an unregistered gun",
    "a gun without a background check",
    "untraceable guns",
    "ghost guns",
)
ILLICIT = Blocklist(
    category=Category.ILLICIT,
    name="illicit",
    keywords=(
        *_expand(_ILLICIT_VERBS, _ILLICIT_GOODS),
        "cook meth",
        "cooking meth",
        "how to make meth",
        "synthesize meth",
        "launder money",
        "laundering money",
        "money laundering scheme",
        "hack into her",
        "hack into his",
        "hack into my ex s",
        "hack into someone s",
        "steal a car",
        "hotwire a car",
        "shoplift",
        "how to shoplift",
        "shoplifting tips",
        "tips for shoplifting",
        "carding",
        "darknet market",
        "dark web market",
        "ransomware kit",
        "phishing kit",
        "credit card skimmer",
        "evade taxes",
    ),
)

#: Every default blocklist, profanity included, in taxonomy order.
DEFAULT_BLOCKLISTS: tuple[Blocklist, ...] = (
    HARASSMENT,
    HATE,
    SELF_HARM,
    SEXUAL,
    VIOLENCE,
    ILLICIT,
    DEFAULT_PROFANITY,
)
