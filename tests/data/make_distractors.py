"""Deterministic distractor memories for the search evaluation set (tests/data/search_eval.json).

``distractors(n, seed=DEFAULT_SEED)`` returns ``n`` distinct everyday sentences: episodic notes (who did
what, where, when, how it went) from the same walks of life as the eval facts (family, health, home,
money, travel, work, devices) so they compete for the same words and topics, but none states what a fact
states: no codes, passwords, account numbers, schedules, allergies, prices or dates of the eval facts.
``python -m tests.data.make_distractors --check`` embeds them and lists the ones closest to any eval fact
(the real model; the closest ones are printed for a human to confirm they are not paraphrases).
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

DEFAULT_SEED = 20261205
EVAL_PATH = Path(__file__).with_name("search_eval.json")

PEOPLE = ["Alice", "Bruno", "Chen", "Dana", "Emeka", "Farah", "Gustavo", "Hana", "Ivan", "Jules", "Kofi", "Lena",
          "Mateo", "Nadia", "Omar", "Priya", "Quentin", "Rosa", "Sven", "Tariq", "Uma", "Viktor", "Wen", "Yara",
          "Zoltan", "Agnes", "Bilal", "Carmen", "Dmitri", "Elif", "Femi", "Greta", "Hugo", "Ingrid", "Jonas",
          "Keiko", "Luca", "Marta", "Nils", "Olga", "Pavel", "Rania", "Stefan", "Tomoko", "Ulrich", "Vera",
          "the neighbour", "a colleague", "the new tenant", "an old classmate", "the shop owner", "the coach"]
PLACES = ["the market", "the library", "the park", "the harbour", "the bakery", "the museum", "the stadium",
          "the train station", "the town square", "the community hall", "the riverside path", "the cinema",
          "the swimming pool", "the bookshop", "the farmers' market", "the old castle", "the beach bar",
          "the art gallery", "the hardware store", "the garden centre", "the concert hall", "the ice rink",
          "the village fair", "the botanical garden", "the climbing gym", "the flea market", "the pottery studio"]
WHEN = ["yesterday", "last weekend", "on Saturday morning", "after dinner", "during the storm", "before sunrise",
        "on a rainy afternoon", "late last night", "over the long weekend", "at the end of the summer",
        "on the first warm day", "just after lunch", "during the power cut", "on the way home",
        "at half past six", "in the early evening", "a few weeks ago", "two summers ago", "over breakfast"]
ACTIVITIES = ["a chess tournament", "a pottery class", "a jazz concert", "a street festival", "a quiz night",
              "a bird-watching walk", "a charity run", "a salsa lesson", "a photography workshop",
              "a board-game evening", "a poetry reading", "a football match", "a wine tasting", "a kite contest",
              "a film premiere", "a sailing lesson", "a book swap", "a cooking demonstration", "a choir rehearsal",
              "a volunteer clean-up", "a stand-up comedy show", "an astronomy talk", "a flower show"]
TOPICS = ["medieval history", "bread baking", "jazz piano", "urban gardening", "bird migration", "ceramics",
          "astronomy", "sailing knots", "Italian opera", "climate policy", "chess openings", "woodworking",
          "street photography", "beekeeping", "ancient Rome", "volcanoes", "origami", "marine biology",
          "Renaissance painting", "mountain huts", "fermentation", "lighthouses", "old maps", "calligraphy"]
OBJECTS = ["a second-hand bicycle", "an old film camera", "a stack of postcards", "a wooden chess set",
           "a ceramic teapot", "a kite", "a jigsaw puzzle", "a bag of chestnuts", "a watercolour set",
           "a pair of binoculars", "a vintage lamp", "a basket of figs", "a box of seashells", "a paperback thriller",
           "a ukulele", "a bird feeder", "a straw hat", "a sourdough loaf", "a set of marbles", "a globe",
           "a telescope", "a copper kettle", "a cookbook", "a potted fern", "a harmonica", "a model ship"]
FEELINGS = ["delighted", "a bit bored", "surprised", "moved", "amused", "exhausted but happy", "nostalgic",
            "impressed", "puzzled", "relaxed", "proud", "curious", "cheerful", "thoughtful"]
WEATHER = ["foggy", "windy", "sunny", "drizzly", "freezing", "humid", "stormy", "crisp and clear", "overcast"]
FOODS = ["grilled sardines", "mushroom risotto", "apple pie", "lentil stew", "fresh figs", "a mango salad",
         "roast chestnuts", "pumpkin soup", "a cheese board", "spicy noodles", "plum cake", "stuffed peppers",
         "chickpea curry", "ice cream", "pancakes", "a fish pie", "tapas", "dumplings"]
SHOWS = ["a documentary about whales", "an old western", "a detective series", "a cooking contest",
         "a nature film about owls", "a courtroom drama", "a space documentary", "a silent comedy",
         "a baking competition", "a travel show about Iceland", "a cartoon about a lost robot"]

TEMPLATES = [
    "{p} and I went to {activity} at {place} {when}.",
    "{p} told a long story about {topic} {when}.",
    "{when} {p} bought {object} at {place}.",
    "{p} was {feeling} after {activity} {when}.",
    "We watched {show} with {p} {when}; it was {feeling_adj}.",
    "{p} cooked {food} for everyone {when}.",
    "It was {weather} at {place} {when}, so we left early.",
    "{p} lent me {object} and I returned it {when}.",
    "{p} is reading a thick book about {topic}.",
    "{p} gave a short talk on {topic} at {place}.",
    "{when} I met {p} by chance near {place}.",
    "{p} won a small prize at {activity}.",
    "The queue at {place} was very long {when}.",
    "{p} showed me photos of {object} from a trip.",
    "{p} has taken up {topic} as a new hobby.",
    "{p} and {p2} argued about {topic} over {food}.",
    "We had {food} at {place} {when} and it was {feeling_adj}.",
    "{p} found {object} at {place} for almost nothing.",
    "{p} recommended {show}.",
    "{when} {p} and {p2} organised {activity}.",
    "{p} sent a postcard from a trip about {topic}.",
    "The weather was {weather} during {activity}.",
    "{p} painted a picture of {place} {when}.",
    "{p} asked me whether I had ever tried {food}.",
    "{p} repaired {object} with a bit of glue {when}.",
    "{p} is planning {activity} for the autumn.",
    "There was a lively debate about {topic} at {place}.",
    "{p} learned to make {food} from a video.",
    "I heard {p} practising the ukulele {when}.",
    "{p} brought {food} to {activity}.",
    "{p} felt {feeling} watching {show}.",
    "{p} cleaned {object} until it shone {when}.",
    "{p} and {p2} walked along {place} {when}.",
    "A stranger at {place} asked {p} about {topic}.",
    "{p} took a photo of {object} in the {weather} light.",
    "{p} still talks about {activity} from {when_past}.",
]
FEELING_ADJ = ["fun", "forgettable", "surprisingly good", "too long", "lovely", "a little odd", "charming"]
WHEN_PAST = ["last spring", "years ago", "our school days", "the old neighbourhood", "before the pandemic"]


def _sentence(rng: random.Random) -> str:
    p, p2 = rng.sample(PEOPLE, 2)
    text = rng.choice(TEMPLATES).format(
        p=p, p2=p2, place=rng.choice(PLACES), when=rng.choice(WHEN), activity=rng.choice(ACTIVITIES),
        topic=rng.choice(TOPICS), object=rng.choice(OBJECTS), feeling=rng.choice(FEELINGS),
        weather=rng.choice(WEATHER), food=rng.choice(FOODS), show=rng.choice(SHOWS),
        feeling_adj=rng.choice(FEELING_ADJ), when_past=rng.choice(WHEN_PAST))
    return text[0].upper() + text[1:]


def distractors(n: int, seed: int = DEFAULT_SEED) -> list[str]:
    """``n`` distinct distractor sentences, the same for the same ``(n, seed)`` on every machine."""
    rng = random.Random(seed)
    seen: dict[str, None] = {}
    while len(seen) < n:
        seen.setdefault(_sentence(rng))
    return list(seen)


def eval_pairs(path: Path = EVAL_PATH) -> list[dict[str, str]]:
    """The eval pairs as ``{id, domain, fact, question}`` dicts, ids ``<domain>-NN``."""
    data = json.loads(path.read_text())
    return [{"id": f"{domain}-{i:02d}", "domain": domain, "fact": fact, "question": question}
            for domain, pairs in data["pairs"].items() for i, (fact, question) in enumerate(pairs, start=1)]


def lookup_queries(path: Path = EVAL_PATH) -> list[tuple[str, str]]:
    """The exact-token lookups as ``(query, pair id)``."""
    return [(query, pair_id) for pair_id, query in json.loads(path.read_text())["lookups"]]


def _check(n: int, show: int) -> None:
    import numpy as np

    from agents.memory_hub.search import Embedder

    facts = [p["fact"] for p in eval_pairs()]
    texts = distractors(n)
    embedder = Embedder()
    fv, dv = embedder.encode(facts), embedder.encode(texts)
    sims = dv @ fv.T
    best = sims.max(axis=1)
    order = np.argsort(-best)[:show]
    print(f"{n} distractors; cosine to the nearest fact: max {best.max():.3f}, p99 {np.percentile(best, 99):.3f}")
    for i in order:
        print(f"  {best[i]:.3f}  {texts[i]!r}  ~  {facts[int(sims[i].argmax())]!r}")
    embedder.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=10000)
    parser.add_argument("--check", action="store_true", help="embed and print the distractors nearest a fact")
    parser.add_argument("--show", type=int, default=15)
    args = parser.parse_args()
    if args.check:
        _check(args.n, args.show)
    else:
        for text in distractors(args.n):
            print(text)


if __name__ == "__main__":
    main()
