"""Deterministic demo data for Tessera: a small online shop with real, learnable taste.

`generate_demo(customers, seed)` returns a `DemoDataset` of plain dicts shaped like the
public API payloads (sources, catalogue items, source records, events, consent changes)
plus the ground truth they were drawn from. Everything is drawn from one
`numpy.random.default_rng(seed)` against a fixed reference time, so a seed always yields
the same dataset, byte for byte. Pure Python + numpy: no Django, no clock, no global random state.

What is in it, and why:

* Latent customer groups, each with a concentrated category preference and its own rhythm
  (purchase frequency, spend per order, recency, tenure): RFM plus category-share features
  recover them, and co-purchase models beat popularity.
* Zipf-like popularity inside categories, group-specific item taste, seasonality.
* The identity mess a CDP must cope with: one person in several sources, e-mail case and
  whitespace variants, one phone number in several formats, anonymous web visitors who log
  in later, junk identifiers, third-party enrichment matched by e-mail.

Privacy: e-mail domains are reserved ones (RFC 2606 / RFC 6761); GB, US and FR phone numbers
come from ranges the regulators keep for fiction (Ofcom 0xx 496 0xxx / 020 7946 0xxx, NANP
555-01xx, ARCEP 0x xx xx); DE numbers from blocks commonly used the same way.
"""

from __future__ import annotations

import gc
import json
import unicodedata
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta

import numpy as np

REFERENCE_TIME = datetime(2026, 10, 31, tzinfo=UTC)
HISTORY_DAYS = 365
HISTORY_START = REFERENCE_TIME - timedelta(days=HISTORY_DAYS)
DAY = 86_400
REFERENCE_SECOND = HISTORY_DAYS * DAY  # the time axis counts seconds from HISTORY_START
_HISTORY_START_64 = np.datetime64(HISTORY_START.replace(tzinfo=None), "s")

PURPOSES = ("analytics", "personalization", "marketing", "enrichment", "sale_sharing")

SOURCES = (
    {"key": "shop", "name": "Online shop orders", "kind": "first_party", "trust": 80},
    {"key": "web", "name": "Website events", "kind": "first_party", "trust": 50},
    {"key": "demo-crm", "name": "CRM contacts (demo)", "kind": "first_party", "trust": 90},
    {"key": "enrichment", "name": "Lumen Data Co. enrichment", "kind": "third_party", "trust": 20},
)


@dataclass(frozen=True)
class DemoDataset:
    """One generated shop. Every member is plain JSON-ready data (lists, dicts, str, int, float).

    records: {source key: [record]}; truth: {person key: facts}; group_names[i] names truth group i.
    """

    sources: list[dict]
    items: list[dict]
    records: dict[str, list[dict]]
    events: list[dict]
    consents: list[dict]
    truth: dict[str, dict]
    group_names: list[str]
    reference_time: str = REFERENCE_TIME.isoformat().replace("+00:00", "Z")

    def to_json(self) -> str:
        # Members are plain data already: dataclasses.asdict would only deep-copy them, slowly.
        return json.dumps({f.name: getattr(self, f.name) for f in fields(self)}, sort_keys=True, ensure_ascii=False)


# --- Catalogue vocabulary ------------------------------------------------------------------


@dataclass(frozen=True)
class _Category:
    name: str
    median_price: float
    nouns: tuple[str, ...]
    adjectives: tuple[str, ...]
    brands: tuple[str, ...]
    selling_points: tuple[str, ...]
    extra_attributes: dict[str, tuple] = field(default_factory=dict)


CATEGORIES = (
    _Category(
        "outdoor", 70.0,
        ("tent", "sleeping bag", "backpack", "hiking boots", "trekking poles", "headlamp", "camping stove",
         "rain jacket", "water filter", "hammock", "camp chair", "trail map case"),
        ("ultralight", "waterproof", "four-season", "packable", "rugged", "insulated"),
        ("Northridge", "Summitline", "Wildpath", "Cairn & Co"),
        ("built for multi-day hikes and wild camping", "taped seams keep the rain out on exposed ridges",
         "packs down small enough for any backpack", "tested on alpine trails and windy campsites",
         "reinforced for rocky terrain and river crossings", "keeps you warm on cold nights under the stars"),
        {"season": ("3-season", "4-season"), "weight_g": (350, 800, 1200, 2100)},
    ),
    _Category(
        "kitchen", 40.0,
        ("chef's knife", "cast iron skillet", "dutch oven", "stand mixer", "saucepan set", "cutting board",
         "spice grinder", "pasta maker", "baking tray", "espresso maker", "mixing bowls", "stock pot"),
        ("professional", "non-stick", "enamelled", "stainless steel", "hand-forged", "oven-safe"),
        ("Copperleaf", "Hearth & Whisk", "Maison Cuivre", "Kitchenwright"),
        ("sears steak and roasts vegetables evenly", "oven-safe for slow-cooked stews and braises",
         "a razor-sharp edge for dicing onions and fresh herbs", "made for baking bread, cakes and pastry",
         "dishwasher-safe and easy to clean after dinner", "even heat for sauces, risotto and simmering soups"),
        {"material": ("stainless steel", "cast iron", "ceramic", "copper", "beech wood")},
    ),
    _Category(
        "books", 16.0,
        ("novel", "cookbook", "biography", "thriller", "travel guide", "poetry collection", "history",
         "science fiction novel", "self-help book", "graphic novel", "memoir", "short story collection"),
        ("bestselling", "award-winning", "illustrated", "paperback", "hardcover", "signed"),
        ("Larkspur Press", "Quill House", "Bramble Books", "Northlight Publishing"),
        ("a gripping story readers cannot put down", "chapters that reward a slow Sunday read",
         "written by an acclaimed author", "a favourite of book clubs and reading lists",
         "an unforgettable narrative about love, loss and memory", "vivid prose and memorable characters"),
        {"pages": (180, 240, 320, 416, 560), "language": ("en", "de", "fr")},
    ),
    _Category(
        "electronics", 160.0,
        ("wireless headphones", "bluetooth speaker", "smartwatch", "e-reader", "4K monitor", "mechanical keyboard",
         "portable charger", "action camera", "noise-cancelling earbuds", "smart home hub", "tablet",
         "gaming mouse"),
        ("wireless", "high-resolution", "fast-charging", "noise-cancelling", "compact", "smart"),
        ("Voltaic", "Lumetrix", "Auralink", "Pixelforge"),
        ("long battery life with USB-C fast charging", "bluetooth pairing with your phone and laptop in seconds",
         "a crisp high-resolution display with vivid colour", "firmware updates that add features over time",
         "a low-latency wireless connection for gaming and streaming", "covered by a two-year warranty"),
        {"warranty_years": (1, 2, 3), "connectivity": ("bluetooth", "wifi", "usb-c")},
    ),
    _Category(
        "beauty", 22.0,
        ("face serum", "moisturiser", "lipstick", "eyeshadow palette", "shampoo", "conditioner", "sunscreen",
         "hand cream", "eau de parfum", "cleansing balm", "nail polish", "body lotion"),
        ("hydrating", "vegan", "fragrance-free", "nourishing", "long-lasting", "radiant"),
        ("Lumiere", "Petal & Pine", "Dewdrop Lab", "Velour"),
        ("hyaluronic acid hydrates dry skin all day", "dermatologist-tested and gentle on sensitive skin",
         "a cruelty-free formula with natural botanicals", "long-lasting colour with a silky finish",
         "a lightweight texture that absorbs without residue", "vitamin C for a radiant glow"),
        {"volume_ml": (30, 50, 100, 250), "skin_type": ("dry", "oily", "sensitive", "all")},
    ),
    _Category(
        "kids", 28.0,
        ("building blocks set", "plush bear", "wooden train set", "jigsaw puzzle", "picture book", "balance bike",
         "art kit", "doll house", "school backpack", "bath toys", "science kit", "board game"),
        ("educational", "colourful", "toddler-safe", "wooden", "creative", "giant"),
        ("Tinytrail", "Jumbleberry", "Little Oak", "Kiddo Works"),
        ("encourages imaginative play and early learning", "non-toxic paints and rounded edges for toddlers",
         "a great gift for birthdays and holidays", "helps children build motor skills and creativity",
         "durable enough for nursery and playground", "hours of fun for the whole family"),
        {"age_range": ("0-2", "3-5", "6-8", "9-12")},
    ),
    _Category(
        "garden", 32.0,
        ("pruning shears", "raised bed kit", "hose reel", "seed starter tray", "compost bin", "watering can",
         "lawn mower", "garden gloves", "bird feeder", "planter", "hedge trimmer", "wheelbarrow"),
        ("heavy-duty", "weatherproof", "ergonomic", "cordless", "galvanised", "eco-friendly"),
        ("Greenthumb", "Fernhill", "Rootstock", "Bloomfield"),
        ("ideal for sowing seeds, bulbs and seedlings in spring", "weatherproof for lawns, borders and vegetable beds",
         "makes pruning roses and hedges effortless", "helps flowers, herbs and tomatoes thrive",
         "sturdy enough for soil, compost and mulch", "perfect for allotments and backyard gardening"),
        {"material": ("steel", "recycled plastic", "cedar wood", "galvanised iron")},
    ),
    _Category(
        "fitness", 45.0,
        ("yoga mat", "adjustable dumbbells", "resistance bands", "running shoes", "kettlebell", "foam roller",
         "jump rope", "exercise bike", "protein shaker", "fitness tracker", "pull-up bar", "gym bag"),
        ("non-slip", "adjustable", "lightweight", "high-density", "breathable", "pro-grade"),
        ("Pulsefit", "Ironstride", "Flowform", "Kinetic Labs"),
        ("supports strength training, cardio and HIIT workouts", "a non-slip grip for yoga, pilates and stretching",
         "tracks your reps, runs and recovery", "cushioned for running and gym sessions",
         "builds muscle and endurance at home", "compact enough for home workouts"),
        {"level": ("beginner", "intermediate", "advanced")},
    ),
    _Category(
        "fashion", 50.0,
        ("denim jacket", "wool sweater", "leather belt", "sneakers", "summer dress", "chinos", "silk scarf",
         "trench coat", "ankle boots", "linen shirt", "handbag", "sunglasses"),
        ("slim-fit", "organic cotton", "tailored", "oversized", "vintage-inspired", "everyday"),
        ("Atelier Nord", "Threadline", "Maple & Moss", "Urbane"),
        ("a tailored fit that pairs with jeans or trousers", "soft organic cotton fabric, machine washable",
         "timeless style for the office and the weekend", "an on-trend silhouette for this season's wardrobe",
         "cut in a wide range of sizes for a flattering fit", "crafted from premium leather and wool"),
        {"size": ("XS", "S", "M", "L", "XL"), "material": ("cotton", "wool", "linen", "leather", "denim")},
    ),
    _Category(
        "home", 55.0,
        ("throw blanket", "scented candle", "table lamp", "cushion cover", "wall mirror", "bath towels",
         "duvet set", "storage baskets", "vase", "area rug", "picture frame", "curtains"),
        ("cosy", "minimalist", "handwoven", "Scandinavian", "soft-touch", "velvet"),
        ("Nestwell", "Oak & Linen", "Haven Home", "Lumen Living"),
        ("adds warmth to living room and bedroom decor", "soft-touch fabric for a cosy sofa or bed",
         "a minimalist design that fits any interior", "brightens a hallway, study or reading nook",
         "handwoven by artisans from natural fibres", "makes a house feel like home"),
        {"room": ("living room", "bedroom", "bathroom", "hallway")},
    ),
)
CATEGORY_NAMES = tuple(c.name for c in CATEGORIES)
ITEMS_PER_CATEGORY = 30
COLORS = ("black", "white", "grey", "navy", "forest green", "red", "sand", "olive", "sky blue", "charcoal")
BOOK_TITLE_WORDS = (
    ("Silent", "Last", "Hidden", "Golden", "Winter", "Lost", "Midnight", "Distant", "Burning", "Quiet"),
    ("Harbour", "Garden", "River", "Kingdom", "Letters", "Orchard", "Lighthouse", "Summer", "Atlas", "Tide"),
)

# Month demand (Black Friday and Christmas peak) and category seasons, indexed by month 1-12.
MONTH_DEMAND = {1: 0.85, 2: 0.8, 3: 0.9, 4: 0.95, 5: 1.0, 6: 0.95, 7: 0.95, 8: 1.0, 9: 0.95, 10: 1.0,
                11: 1.5, 12: 1.8}
CATEGORY_SEASONS = {
    "garden": {1: 0.3, 2: 0.7, 3: 2.2, 4: 2.8, 5: 2.5, 6: 1.6, 7: 1.2, 8: 0.9, 9: 0.7, 10: 0.5, 11: 0.3, 12: 0.3},
    "outdoor": {1: 0.6, 2: 0.7, 5: 1.6, 6: 1.9, 7: 2.0, 8: 1.7, 11: 0.7, 12: 0.8},
    "fitness": {1: 2.2, 2: 1.5, 9: 1.2},
    "kids": {8: 1.6, 9: 1.4, 12: 2.0},
    "electronics": {11: 1.6, 12: 1.7},
    "books": {7: 1.2, 8: 1.2, 12: 1.4},
    "beauty": {2: 1.3, 12: 1.4},
    "fashion": {3: 1.2, 9: 1.3, 10: 1.2},
    "home": {10: 1.2, 11: 1.3, 12: 1.2},
    "kitchen": {11: 1.3, 12: 1.5},
}

# --- Customer groups -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Group:
    name: str
    share: float
    category_weights: dict[str, float]
    purchases_per_year: float
    tenure_days: tuple[int, int]  # how long ago the person first showed up
    idle_days: tuple[int, int]  # how long ago their activity stopped: drives recency
    price_affinity: float  # exponent on relative price: >0 picks pricier items, <0 cheaper ones
    discount_rate: float
    extra_quantity: float
    crm_rate: float
    mean_age: int
    income_level: int  # index into INCOME_BANDS, for the broker's guess
    household_extra: float  # mean household size beyond one, for the broker's guess
    interests: tuple[str, ...]


GROUPS = (
    _Group("bargain hunters", share=0.20, category_weights={"fashion": 0.45, "beauty": 0.35, "home": 0.1},
           purchases_per_year=6.0, tenure_days=(200, 900), idle_days=(0, 20), price_affinity=-1.5,
           discount_rate=0.6, extra_quantity=0.6, crm_rate=0.35, mean_age=34, income_level=1,
           household_extra=1.2, interests=("deals", "fashion", "beauty")),
    _Group("loyal high spenders", share=0.14, category_weights={"electronics": 0.55, "home": 0.25, "fashion": 0.1},
           purchases_per_year=7.0, tenure_days=(500, 2200), idle_days=(0, 25), price_affinity=1.5,
           discount_rate=0.05, extra_quantity=0.1, crm_rate=0.9, mean_age=46, income_level=4,
           household_extra=1.0, interests=("technology", "design", "travel")),
    _Group("new customers", share=0.16, category_weights={"books": 0.55, "beauty": 0.1, "electronics": 0.1},
           purchases_per_year=10.0, tenure_days=(3, 60), idle_days=(0, 3), price_affinity=0.0,
           discount_rate=0.25, extra_quantity=0.2, crm_rate=0.2, mean_age=27, income_level=1,
           household_extra=0.5, interests=("reading", "wellness", "music")),
    _Group("lapsed customers", share=0.15, category_weights={"kids": 0.55, "books": 0.1, "fashion": 0.15},
           purchases_per_year=4.0, tenure_days=(400, 1500), idle_days=(170, 300), price_affinity=0.0,
           discount_rate=0.3, extra_quantity=0.2, crm_rate=0.5, mean_age=39, income_level=2,
           household_extra=2.0, interests=("parenting", "family", "movies")),
    _Group("outdoor enthusiasts", share=0.18, category_weights={"outdoor": 0.55, "fitness": 0.3, "garden": 0.05},
           purchases_per_year=4.5, tenure_days=(150, 1200), idle_days=(0, 45), price_affinity=0.4,
           discount_rate=0.15, extra_quantity=0.15, crm_rate=0.5, mean_age=37, income_level=3,
           household_extra=0.8, interests=("hiking", "camping", "running")),
    _Group("home cooks", share=0.17, category_weights={"kitchen": 0.6, "garden": 0.15, "home": 0.1},
           purchases_per_year=4.5, tenure_days=(150, 1200), idle_days=(0, 45), price_affinity=0.2,
           discount_rate=0.2, extra_quantity=0.2, crm_rate=0.5, mean_age=44, income_level=2,
           household_extra=1.8, interests=("cooking", "gardening", "wine")),
)
CATEGORY_FLOOR = 0.015  # every group buys a little of everything
PREFERENCE_CONCENTRATION = 20.0  # Dirichlet strength: how close a person sits to their group
GROUP_ITEM_TASTE = 0.9  # log-normal spread of a group's liking for single items, beyond popularity
INCOME_BANDS = ("<25k", "25-50k", "50-100k", "100-150k", "150k+")

# --- People: countries, cities, phone blocks -----------------------------------------------


@dataclass(frozen=True)
class _City:
    name: str
    postal: str  # postcode stem, country-specific meaning
    phone_blocks: tuple[str, ...]  # national significant number prefixes; the rest is free digits
    free_digits: int
    area_length: int  # digits of the area code inside the national number, for formatting


@dataclass(frozen=True)
class _Country:
    code: str
    calling_code: str
    share: float
    language: str
    first_names: tuple[str, ...]
    last_names: tuple[str, ...]
    streets: tuple[str, ...]
    cities: tuple[_City, ...]


def _us_city(name: str, postal: str, *area_codes: str) -> _City:
    # NANP keeps 555-0100..0199 for fiction in every area code.
    return _City(name, postal, tuple(f"{a}55501" for a in area_codes), 2, 3)


COUNTRIES = (
    _Country(
        "GB", "44", 0.35, "en",
        ("Oliver", "Amelia", "George", "Isla", "Harry", "Ava", "Jack", "Emily", "Charlie", "Sophie", "Thomas",
         "Grace", "James", "Lily", "William", "Chloe", "Jane", "Daniel", "Hannah", "Samuel"),
        ("Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Patel", "Wright",
         "Robinson", "Thompson", "Evans", "Walker", "Hughes", "Green", "Doe", "Clarke", "Hall", "Wood"),
        ("High Street", "Station Road", "Church Lane", "Victoria Road", "Park Avenue", "Mill Lane", "Queen Street"),
        (
            _City("London", "SW1A N1 E2 SE10 W2 NW3", ("2079460",), 3, 2),
            _City("Leeds", "LS1 LS6", ("1134960",), 3, 3),
            _City("Sheffield", "S1 S10", ("1144960",), 3, 3),
            _City("Leicester", "LE1 LE2", ("1164960",), 3, 3),
            _City("Bristol", "BS1 BS8", ("1174960",), 3, 3),
            _City("Reading", "RG1 RG4", ("1184960",), 3, 3),
            _City("Birmingham", "B1 B15", ("1214960",), 3, 3),
            _City("Edinburgh", "EH1 EH3", ("1314960",), 3, 3),
            _City("Glasgow", "G1 G12", ("1414960",), 3, 3),
            _City("Liverpool", "L1 L17", ("1514960",), 3, 3),
            _City("Manchester", "M1 M20", ("1614960",), 3, 3),
            _City("Newcastle upon Tyne", "NE1 NE6", ("1914980",), 3, 3),
        ),
    ),
    _Country(
        "US", "1", 0.35, "en",
        ("Liam", "Olivia", "Noah", "Emma", "Ethan", "Mia", "Mason", "Harper", "Lucas", "Evelyn", "Logan",
         "Abigail", "Elijah", "Ella", "Aiden", "Madison", "Carter", "Avery", "Jayden", "Scarlett"),
        ("Miller", "Garcia", "Rodriguez", "Martinez", "Anderson", "Lee", "Nguyen", "Hernandez", "Lopez",
         "Gonzalez", "Clark", "Lewis", "Young", "Allen", "King", "Scott", "Baker", "Adams", "Nelson", "Carter"),
        ("Main St", "Oak Ave", "Maple Dr", "Cedar Ln", "Pine St", "Elm St", "Washington Ave", "Lakeview Dr"),
        (
            _us_city("New York", "NY 100", "212", "332", "646", "718", "917", "347", "929"),
            _us_city("Los Angeles", "CA 900", "213", "310", "323", "424", "818", "747"),
            _us_city("San Francisco", "CA 941", "415", "628"),
            _us_city("Chicago", "IL 606", "312", "773", "872"),
            _us_city("Boston", "MA 021", "617", "857"),
            _us_city("Seattle", "WA 981", "206"),
            _us_city("Austin", "TX 787", "512", "737"),
            _us_city("Denver", "CO 802", "303", "720"),
            _us_city("Miami", "FL 331", "305", "786"),
            _us_city("Atlanta", "GA 303", "404", "470", "678"),
        ),
    ),
    _Country(
        "DE", "49", 0.15, "de",
        ("Lukas", "Mia", "Leon", "Emma", "Finn", "Hannah", "Jonas", "Sophia", "Paul", "Lena", "Felix", "Marie",
         "Jürgen", "Anna", "Maximilian", "Lea", "Elias", "Clara", "Niklas", "Greta"),
        ("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz", "Hoffmann",
         "Koch", "Richter", "Klein", "Wolf", "Schröder", "Neumann", "Braun", "Zimmermann", "Krüger", "Hartmann"),
        ("Hauptstraße", "Bahnhofstraße", "Gartenweg", "Schillerstraße", "Lindenallee", "Goethestraße"),
        (
            _City("Berlin", "10", ("3023125",), 3, 2),
            _City("Frankfurt am Main", "60", ("6990009",), 3, 2),
            _City("Hamburg", "20", ("4066969",), 3, 2),
            _City("Köln", "50", ("2214710",), 3, 3),
            _City("München", "80", ("8999998",), 3, 2),
        ),
    ),
    _Country(
        "FR", "33", 0.15, "fr",
        ("Gabriel", "Louise", "Raphaël", "Jade", "Léo", "Ambre", "Louis", "Alice", "Arthur", "Chloé", "Jules",
         "Léa", "Hugo", "Manon", "Lucas", "Inès", "Nathan", "Camille", "Hélène", "Théo"),
        ("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy", "Moreau",
         "Simon", "Laurent", "Lefèvre", "Michel", "Garcia", "David", "Bertrand", "Roux", "Vincent", "Fournier"),
        ("rue de la Paix", "avenue Victor Hugo", "rue du Moulin", "boulevard Voltaire", "rue des Lilas"),
        (
            _City("Paris", "750", ("19900",), 4, 1),
            _City("Nantes", "440", ("26191",), 4, 1),
            _City("Lille", "590", ("35301",), 4, 1),
            _City("Lyon", "690", ("46571",), 4, 1),
            _City("Toulouse", "310", ("53649",), 4, 1),
        ),
    ),
)
EMAIL_DOMAINS = ("example.com", "example.org", "example.net", "mail.example", "inbox.example", "post.example")
PHONE_COVERAGE = 0.75  # share of people who ever gave a phone number
WEB_PRESENCE = 0.7  # share of people who browse the website (and so have anonymous ids)
BROWSE_VIEWS_PER_PURCHASE = 2.5  # views besides those right before a purchase
ENRICHMENT_COVERAGE = 0.06  # share of customers the broker knows


@dataclass(frozen=True)
class _Phone:
    country: str
    calling_code: str
    groups: tuple[str, ...]  # national significant number split as it is usually written

    @property
    def e164(self) -> str:
        return f"+{self.calling_code}{''.join(self.groups)}"


@dataclass(slots=True)
class _Person:
    key: str
    group: int
    country: _Country
    city: _City
    first_name: str
    last_name: str
    email: str
    phone: _Phone | None
    birth_date: str
    address: dict | None
    customer_since: str
    crm_id: str | None = None
    user_id: str | None = None
    anonymous_ids: list[str] = field(default_factory=list)
    login_second: int = 0  # when they first logged in on the web: anonymous browsing before it
    second_device_second: int | None = None
    shop_email: str = ""  # the variant the shop sends for this person
    shop_phone: str | None = None


@dataclass(frozen=True)
class _Population:
    people: list[_Person]
    group: np.ndarray
    start_day: np.ndarray  # first day of activity inside the history window (day 0 = HISTORY_START)
    end_day: np.ndarray  # last day of activity, inclusive: drives recency
    first_visit: np.ndarray  # second of their first visit in the window: nothing of theirs comes earlier
    preferences: np.ndarray  # category preference per person; rows sum to 1


@dataclass(frozen=True)
class _Catalogue:
    items: list[dict]
    category: np.ndarray  # category index per item
    price_cents: np.ndarray
    items_in_category: list[np.ndarray]
    # cumulative choice weights per (group, category) over items_in_category[category]
    item_cdf: list[list[np.ndarray]]


@dataclass(frozen=True)
class _Activity:
    """Behaviour on the time axis (seconds since HISTORY_START), one row per action."""

    kind: np.ndarray  # index into EVENT_TYPES
    person: np.ndarray
    item: np.ndarray
    second: np.ndarray
    quantity: np.ndarray
    price_cents: np.ndarray
    rating: np.ndarray
    first_purchase_second: np.ndarray  # per person
    spend_cents: np.ndarray  # per person


EVENT_TYPES = ("view", "add_to_cart", "purchase", "rating")
VIEW, ADD_TO_CART, PURCHASE, RATING = range(4)


# --- Entry point ---------------------------------------------------------------------------


def generate_demo(customers: int = 3000, seed: int = 42) -> DemoDataset:
    """Generate a reproducible demo shop with `customers` people."""
    if customers < 1:
        raise ValueError("customers must be at least 1")
    rng = np.random.default_rng(seed)
    with _gc_paused():
        catalogue = _build_catalogue(rng)
        population = _draw_population(rng, customers)
        activity = _simulate_activity(rng, catalogue, population)
        _assign_web_identities(rng, population, activity.first_purchase_second)
        _choose_shop_identifiers(rng, population.people)
        return DemoDataset(
            sources=[dict(s) for s in SOURCES],
            items=catalogue.items,
            records=_build_records(rng, population, activity),
            events=_build_events(rng, population.people, catalogue, activity),
            consents=_build_consents(rng, population),
            truth=_build_truth(population),
            group_names=[g.name for g in GROUPS],
        )


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Building ~10^5-10^6 acyclic dicts makes the cyclic collector rescan them over and over
    (about a third of the run time); nothing here creates cycles, so pause it, then restore."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# --- Catalogue -----------------------------------------------------------------------------


def _build_catalogue(rng: np.random.Generator) -> _Catalogue:
    items, category, price = [], [], []
    for c_index, cat in enumerate(CATEGORIES):
        for title_parts in _distinct_titles(rng, cat):
            cents = _draw_price_cents(rng, cat.median_price)
            items.append(_item_payload(rng, cat, title_parts, cents))
            category.append(c_index)
            price.append(cents)
    # SKUs are numbered in a shuffled order so ids do not reveal the category.
    order = rng.permutation(len(items))
    items = [items[i] for i in order]
    for number, item in enumerate(items, start=1):
        item["id"] = f"SKU-{number:04d}"
    category, price = np.array(category)[order], np.array(price)[order]
    items_in_category = [np.flatnonzero(category == c) for c in range(len(CATEGORIES))]
    return _Catalogue(items, category, price, items_in_category,
                      _item_choice_cdfs(rng, price, items_in_category))


def _distinct_titles(rng: np.random.Generator, cat: _Category) -> list[tuple[str, str, str, str]]:
    """(brand, adjective, noun, title) for each item of a category, titles all different."""
    combos = [(b, a, n) for b in cat.brands for a in cat.adjectives for n in cat.nouns]
    picks = [combos[i] for i in rng.choice(len(combos), size=ITEMS_PER_CATEGORY, replace=False)]
    if cat.name != "books":
        return [(b, a, n, _title_case(f"{b} {a} {n}")) for b, a, n in picks]
    firsts, seconds = BOOK_TITLE_WORDS
    names = rng.choice(len(firsts) * len(seconds), size=ITEMS_PER_CATEGORY, replace=False)
    return [(b, a, n, f"The {firsts[k // len(seconds)]} {seconds[k % len(seconds)]} ({a} {n})")
            for (b, a, n), k in zip(picks, names.tolist())]


def _draw_price_cents(rng: np.random.Generator, median: float) -> int:
    price = median * float(np.exp(rng.normal(0.0, 0.55)))
    return max(299, int(round(price)) * 100 - 1)  # shop prices end in .99


def _item_payload(rng: np.random.Generator, cat: _Category, parts: tuple[str, str, str, str], cents: int) -> dict:
    brand, adjective, noun, title = parts
    points = [cat.selling_points[i] for i in rng.choice(len(cat.selling_points), size=3, replace=False)]
    # No article: many nouns are plural ("bath towels"); the last sentence names the category in words.
    description = (f"{_upper_first(adjective)} {noun} from {brand}: {points[0]}. "
                   f"{_upper_first(points[1])}, and {points[2]}. Part of our {cat.name} range.")
    attributes = {"brand": brand, "price": cents / 100, "color": _pick(rng, COLORS)}
    for name, options in cat.extra_attributes.items():
        attributes[name] = _pick(rng, options)
    return {"id": "", "title": title, "category": cat.name, "description": description, "attributes": attributes}


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]  # str.capitalize() would lower "vitamin C"


def _title_case(text: str) -> str:
    return " ".join(_upper_first(word) for word in text.split())  # str.title() gives "Chef'S"


def _item_choice_cdfs(rng: np.random.Generator, price_cents: np.ndarray,
                      items_in_category: list[np.ndarray]) -> list[list[np.ndarray]]:
    """Per group and category: Zipf popularity x the group's own taste x its price appetite."""
    popularity = np.empty(len(price_cents))
    for members in items_in_category:
        ranks = rng.permutation(len(members)) + 1
        popularity[members] = ranks ** -1.1
    cdfs = []
    for group in GROUPS:
        taste = np.exp(rng.normal(0.0, GROUP_ITEM_TASTE, len(price_cents)))
        per_category = []
        for members in items_in_category:
            relative_price = price_cents[members] / np.median(price_cents[members])
            weight = popularity[members] * taste[members] * relative_price ** group.price_affinity
            per_category.append(np.cumsum(weight) / weight.sum())
        cdfs.append(per_category)
    return cdfs


# --- People --------------------------------------------------------------------------------


def _draw_population(rng: np.random.Generator, n: int) -> _Population:
    """People with identity facts, an activity window and category preferences."""
    groups = rng.choice(len(GROUPS), size=n, p=[g.share for g in GROUPS])
    tenure = _draw_in_ranges(rng, np.array([g.tenure_days for g in GROUPS])[groups])
    idle = _draw_in_ranges(rng, np.array([g.idle_days for g in GROUPS])[groups])
    start_day = np.maximum(0, HISTORY_DAYS - tenure)
    end_day = np.maximum(start_day, HISTORY_DAYS - 1 - idle)
    first_visit = start_day * DAY + rng.integers(0, 7 * 3600, n)  # activity itself starts at 07:00
    preferences = _draw_preferences(rng, groups)

    country_index = rng.choice(len(COUNTRIES), size=n, p=[c.share for c in COUNTRIES])
    phone_pools = _PhonePools(rng)
    used_emails: set[str] = set()
    people = []
    for i in range(n):
        since = (REFERENCE_TIME.date() - timedelta(days=int(tenure[i]))).isoformat()
        people.append(_draw_identity(rng, f"P{i + 1:05d}", int(groups[i]), COUNTRIES[country_index[i]], since,
                                     used_emails, phone_pools))
    return _Population(people, groups, start_day, end_day, first_visit, preferences)


def _draw_in_ranges(rng: np.random.Generator, ranges: np.ndarray) -> np.ndarray:
    low, high = ranges[:, 0], ranges[:, 1]
    return low + np.floor(rng.random(len(ranges)) * (high - low + 1)).astype(int)


def _draw_preferences(rng: np.random.Generator, groups: np.ndarray) -> np.ndarray:
    means = np.array([[g.category_weights.get(c, 0.0) + CATEGORY_FLOOR for c in CATEGORY_NAMES] for g in GROUPS])
    means /= means.sum(axis=1, keepdims=True)
    raw = rng.standard_gamma(means[groups] * PREFERENCE_CONCENTRATION)  # Dirichlet, one row per person
    raw = np.maximum(raw, 1e-12)
    return raw / raw.sum(axis=1, keepdims=True)


def _draw_identity(rng, key: str, group: int, country: _Country, customer_since: str, used_emails: set[str],
                   phone_pools: _PhonePools) -> _Person:
    first = _pick(rng, country.first_names)
    last = _pick(rng, country.last_names)
    city = country.cities[0] if rng.random() < 0.3 else _pick(rng, country.cities)  # capitals are big
    phone = phone_pools.take(country, city) if rng.random() < PHONE_COVERAGE else None
    age = min(max(int(rng.normal(GROUPS[group].mean_age, 11)), 18), 85)
    birth = REFERENCE_TIME.date() - timedelta(days=age * 365 + _below(rng, 365))
    address = _draw_address(rng, country, city) if rng.random() < 0.7 else None
    return _Person(key, group, country, city, first, last, _unique_email(rng, first, last, used_emails),
                   phone, birth.isoformat(), address, customer_since)


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower().replace(" ", "")


def _unique_email(rng: np.random.Generator, first: str, last: str, used: set[str]) -> str:
    first, last = _ascii(first), _ascii(last)
    local = (f"{first}.{last}", f"{first}{last}", f"{first[0]}.{last}", f"{first}_{last}")[_below(rng, 4)]
    domain = _pick(rng, EMAIL_DOMAINS)
    email = f"{local}@{domain}"
    while email in used:  # namesakes get a number, as real mailbox providers force them to
        email = f"{local}{_between(rng, 1, 1000)}@{domain}"
    used.add(email)
    return email


def _draw_address(rng: np.random.Generator, country: _Country, city: _City) -> dict:
    street = _pick(rng, country.streets)
    number = _between(rng, 1, 200)
    stems = city.postal.split()
    if country.code == "GB":
        letters = "ABDEFGHJLNPQRSTUWXYZ"
        code = f"{_pick(rng, stems)} {_between(rng, 1, 10)}{_pick(rng, letters)}{_pick(rng, letters)}"
        line1 = f"{number} {street}"
    elif country.code == "US":
        state, zip_stem = stems
        code = f"{state} {zip_stem}{_between(rng, 1, 100):02d}"
        line1 = f"{number * 10 + _below(rng, 10)} {street}"
    elif country.code == "DE":
        code = f"{city.postal}{_between(rng, 100, 1000)}"
        line1 = f"{street} {number}"
    else:
        code = f"{city.postal}{_between(rng, 1, 20):02d}"
        line1 = f"{number} {street}"
    return {"line1": line1, "postal_code": code, "city": city.name, "country": country.code}


class _PhonePools:
    """Unique numbers per city, drawn without replacement; a city that runs dry gives none."""

    def __init__(self, rng: np.random.Generator):
        self._rng = rng
        self._remaining: dict[tuple[str, str], list[int]] = {}

    def take(self, country: _Country, city: _City) -> _Phone | None:
        key = (country.code, city.name)
        if key not in self._remaining:
            size = len(city.phone_blocks) * 10 ** city.free_digits
            self._remaining[key] = self._rng.permutation(size).tolist()
        pool = self._remaining[key]
        if not pool:
            return None
        block, number = divmod(pool.pop(), 10 ** city.free_digits)
        national = f"{city.phone_blocks[block]}{number:0{city.free_digits}d}"
        return _Phone(country.code, country.calling_code, _split_national(country.code, national, city.area_length))


def _split_national(country: str, national: str, area: int) -> tuple[str, ...]:
    if country == "US":
        return national[:3], national[3:6], national[6:]
    if country == "GB":
        return national[:area], national[area:-4], national[-4:]
    if country == "FR":
        return national[0], national[1:3], national[3:5], national[5:7], national[7:9]
    return national[:area], national[area:]


def _phone_formats(phone: _Phone) -> dict[str, str]:
    """Ways people and systems write one number; 'national' ones need the record's country."""
    g, cc = phone.groups, phone.calling_code
    formats = {"e164": phone.e164, "international": f"+{cc} {' '.join(g)}"}
    if phone.country == "US":
        formats["dashed"] = f"+1-{'-'.join(g)}"
        formats["national"] = f"({g[0]}) {g[1]}-{g[2]}"
        formats["dotted"] = ".".join(g)
    else:
        formats["national"] = f"0{g[0]} {' '.join(g[1:])}"
        formats["compact"] = f"0{''.join(g)}"
        if phone.country == "FR":
            formats["dotted"] = f"0{g[0]}." + ".".join(g[1:])
        if phone.country == "DE":
            formats["slashed"] = f"0{g[0]}/{''.join(g[1:])}"
    return formats


def _international_formats(phone: _Phone) -> list[str]:
    return [v for v in _phone_formats(phone).values() if v.startswith("+")]


def _pick(rng: np.random.Generator, options):
    return options[_below(rng, len(options))]


def _below(rng: np.random.Generator, n: int) -> int:
    # Scalar rng.integers is ~10x slower than rng.random; this runs once per person and field.
    return int(rng.random() * n)


def _between(rng: np.random.Generator, low: int, high: int) -> int:
    return low + _below(rng, high - low)


def _email_variant(rng: np.random.Generator, email: str) -> str:
    """The same address as people type it: capitals, shouting, stray whitespace."""
    local, domain = email.split("@")
    labels = domain.split(".")
    titled = ".".join(part.capitalize() for part in local.split(".")) + "@" + ".".join(
        [label.capitalize() for label in labels[:-1]] + [labels[-1].upper()])
    variants = (titled, email.upper(), f"  {email} ", f"  {titled} ", f"{email}\n", email.capitalize())
    return _pick(rng, variants)


# --- Behaviour -----------------------------------------------------------------------------


def _month_of_day() -> np.ndarray:
    return np.array([(HISTORY_START + timedelta(days=d)).month for d in range(HISTORY_DAYS)])


def _simulate_activity(rng, catalogue: _Catalogue, population: _Population) -> _Activity:
    months = _month_of_day()
    season = np.array([[CATEGORY_SEASONS.get(c, {}).get(m, 1.0) for c in CATEGORY_NAMES] for m in range(1, 13)])
    purchases = _simulate_purchases(rng, catalogue, population, months, season)
    browsing = _simulate_browsing(rng, catalogue, population, months, season, purchases)
    funnel = _simulate_funnel(rng, purchases, population.first_visit)
    ratings = _simulate_ratings(rng, catalogue, purchases, population.preferences)
    parts = [purchases, browsing, funnel, ratings]
    merged = {name: np.concatenate([p[name] for p in parts]) for name in purchases}
    n = len(population.people)
    first_purchase = np.full(n, REFERENCE_SECOND, dtype=np.int64)
    np.minimum.at(first_purchase, purchases["person"], purchases["second"])
    spend = np.bincount(purchases["person"], weights=purchases["price_cents"] * purchases["quantity"], minlength=n)
    return _Activity(first_purchase_second=first_purchase, spend_cents=spend.astype(np.int64), **merged)


def _actions(kind, person, item, second, quantity=None, price_cents=None, rating=None) -> dict[str, np.ndarray]:
    zeros = np.zeros(len(person), dtype=np.int64)
    return {
        "kind": np.full(len(person), kind), "person": person, "item": item, "second": second.astype(np.int64),
        "quantity": zeros if quantity is None else quantity,
        "price_cents": zeros if price_cents is None else price_cents,
        "rating": zeros if rating is None else rating,
    }


def _per_group(values, groups: np.ndarray) -> np.ndarray:
    return np.array(values)[groups]


def _simulate_purchases(rng, catalogue, population: _Population, months, season):
    start_day, end_day, groups = population.start_day, population.end_day, population.group
    years = (end_day - start_day + 1) / 365.0
    rate = _per_group([g.purchases_per_year for g in GROUPS], groups) * years
    # Every customer bought once; a gamma-mixed Poisson gives the long tail of heavy buyers.
    count = 1 + rng.poisson(rate * rng.gamma(2.0, 0.5, len(groups)))
    person = np.repeat(np.arange(len(groups)), count)
    day = _seasonal_days(rng, start_day[person], end_day[person], months)
    category = _choose_rows(rng, population.preferences[person] * season[months[day] - 1])
    item = _choose_items(rng, catalogue, groups[person], category)
    quantity = 1 + rng.poisson(_per_group([g.extra_quantity for g in GROUPS], groups[person]))
    second = day * DAY + rng.integers(8 * 3600, 23 * 3600, len(person))
    discount_rate = _per_group([g.discount_rate for g in GROUPS], groups[person])
    discounted = rng.random(len(person)) < np.where(months[day] == 11, discount_rate + 0.2, discount_rate)
    factor = np.where(discounted, rng.choice([0.9, 0.8, 0.7], len(person)), 1.0)
    price = np.round(catalogue.price_cents[item] * factor).astype(np.int64)
    return _actions(PURCHASE, person, item, second, quantity, price)


def _seasonal_days(rng, first: np.ndarray, last: np.ndarray, months: np.ndarray) -> np.ndarray:
    """Day indexes in [first, last] weighted by month demand (inverse CDF sampling)."""
    cdf = np.cumsum([MONTH_DEMAND[m] for m in months])
    low = np.where(first > 0, cdf[np.maximum(first - 1, 0)], 0.0)
    u = low + rng.random(len(first)) * (cdf[last] - low)
    return np.clip(np.searchsorted(cdf, u), first, last)


def _choose_rows(rng, weights: np.ndarray) -> np.ndarray:
    """One column index per row, with probability proportional to that row's weights."""
    cumulative = np.cumsum(weights, axis=1)
    u = rng.random(len(weights)) * cumulative[:, -1]
    return np.minimum((cumulative < u[:, None]).sum(axis=1), weights.shape[1] - 1)


def _choose_items(rng, catalogue: _Catalogue, groups: np.ndarray, categories: np.ndarray) -> np.ndarray:
    items = np.empty(len(groups), dtype=np.int64)
    u = rng.random(len(groups))
    for g in range(len(GROUPS)):
        for c, members in enumerate(catalogue.items_in_category):
            mask = (groups == g) & (categories == c)
            if mask.any():
                picks = np.searchsorted(catalogue.item_cdf[g][c], u[mask])
                items[mask] = members[np.minimum(picks, len(members) - 1)]
    return items


def _simulate_browsing(rng, catalogue, population: _Population, months, season, purchases):
    """Product views beyond the purchase funnel: wider taste, a few per purchase, some carts."""
    start_day, groups = population.start_day, population.group
    bought = np.bincount(purchases["person"], minlength=len(groups))
    count = rng.poisson(BROWSE_VIEWS_PER_PURCHASE * bought + 1)
    person = np.repeat(np.arange(len(groups)), count)
    last = np.minimum(population.end_day[person] + 14, HISTORY_DAYS - 1)  # window shopping outlasts buying
    day = start_day[person] + np.floor(rng.random(len(person)) * (last - start_day[person] + 1)).astype(int)
    taste = 0.7 * population.preferences[person] + 0.3 / len(CATEGORIES)
    category = _choose_rows(rng, taste * season[months[day] - 1])
    item = _choose_items(rng, catalogue, groups[person], category)
    second = day * DAY + rng.integers(7 * 3600, 24 * 3600 - 1, len(person))
    views = _actions(VIEW, person, item, second)
    abandoned = rng.random(len(person)) < 0.08
    cart_second = np.minimum(second[abandoned] + rng.integers(60, 1200, abandoned.sum()), REFERENCE_SECOND - 1)
    carts = _actions(ADD_TO_CART, person[abandoned], item[abandoned], cart_second, np.ones(abandoned.sum(), int))
    return {k: np.concatenate([views[k], carts[k]]) for k in views}


def _before(rng, second: np.ndarray, floor: np.ndarray, longest: int) -> np.ndarray:
    """A moment up to `longest` seconds before `second`, never before `floor`."""
    gap = np.minimum(longest, second - floor)
    return second - np.ceil(gap * rng.uniform(0.05, 1.0, len(second))).astype(np.int64)


def _simulate_funnel(rng, purchases, first_visit: np.ndarray):
    """Each purchase is preceded by views of the item and, mostly, an add-to-cart."""
    person, item, second = purchases["person"], purchases["item"], purchases["second"]
    v_index = np.repeat(np.arange(len(person)), 1 + rng.poisson(0.6, len(person)))
    v_second = _before(rng, second[v_index], first_visit[person[v_index]], 2 * DAY)
    views = _actions(VIEW, person[v_index], item[v_index], v_second)
    carted = rng.random(len(person)) < 0.85
    c_second = _before(rng, second[carted], first_visit[person[carted]], 45 * 60)
    carts = _actions(ADD_TO_CART, person[carted], item[carted], c_second, purchases["quantity"][carted])
    return {k: np.concatenate([views[k], carts[k]]) for k in views}


def _simulate_ratings(rng, catalogue, purchases, preferences):
    """Some purchases get a 1-5 rating a few days later; liked categories rate higher."""
    person, item = purchases["person"], purchases["item"]
    second = purchases["second"] + rng.integers(2 * DAY, 14 * DAY, len(person))
    rated = (rng.random(len(person)) < 0.2) & (second < REFERENCE_SECOND)
    liking = preferences[person[rated], catalogue.category[item[rated]]]
    stars = np.clip(np.round(3.2 + 6.0 * (liking - 0.1) + rng.normal(0, 0.9, rated.sum())), 1, 5).astype(int)
    return _actions(RATING, person[rated], item[rated], second[rated], rating=stars)


# --- Identities in sources -----------------------------------------------------------------


def _assign_web_identities(rng, population: _Population, first_purchase_second: np.ndarray) -> None:
    """Web visitors browse anonymously first, log in around their first order, and some
    later use a second device they only ever use logged in."""
    for i, person in enumerate(population.people):
        if rng.random() >= WEB_PRESENCE:
            continue
        person.user_id = f"u_{_hex(rng, 10)}"
        person.anonymous_ids.append(_uuid(rng))
        first_visit = int(population.first_visit[i])
        person.login_second = first_visit + int(rng.uniform(0.3, 1.0) * (first_purchase_second[i] - first_visit))
        active_until = (int(population.end_day[i]) + 1) * DAY
        if rng.random() < 0.25 and active_until - person.login_second > 2 * DAY:
            person.anonymous_ids.append(_uuid(rng))
            person.second_device_second = person.login_second + int(
                rng.uniform(0.2, 0.9) * (active_until - person.login_second))


def _choose_shop_identifiers(rng, people) -> None:
    for person in people:
        person.shop_email = _email_variant(rng, person.email) if rng.random() < 0.35 else person.email
        if person.phone is not None and rng.random() < 0.5:
            person.shop_phone = _pick(rng, _international_formats(person.phone))


def _hex(rng, length: int) -> str:
    return rng.bytes((length + 1) // 2).hex()[:length]


def _uuid(rng) -> str:
    return str(uuid.UUID(bytes=rng.bytes(16), version=4))


def _iso(seconds) -> list[str]:
    """Seconds since HISTORY_START to ISO 8601 UTC strings, vectorised."""
    stamps = _HISTORY_START_64 + np.asarray(seconds, dtype=np.int64).astype("timedelta64[s]")
    return [s + "Z" for s in np.datetime_as_string(stamps, unit="s").tolist()]


def _iso_one(seconds: int) -> str:
    return (HISTORY_START + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- Records -------------------------------------------------------------------------------


def _build_records(rng, population: _Population, activity: _Activity) -> dict[str, list[dict]]:
    records: dict[str, list[dict]] = {"shop": [], "web": [], "demo-crm": [], "enrichment": []}
    for i, person in enumerate(population.people):
        records["shop"].extend(_shop_records(rng, person, int(activity.first_purchase_second[i])))
        records["web"].extend(_web_records(person, int(population.first_visit[i])))
        if rng.random() < GROUPS[person.group].crm_rate:
            records["demo-crm"].append(_crm_record(rng, person, i, int(activity.spend_cents[i])))
        if rng.random() < ENRICHMENT_COVERAGE:
            records["enrichment"].append(_enrichment_record(rng, person))
    records["shop"].extend(_test_order_records())
    records["enrichment"].extend(_unmatched_enrichment_records(rng, len(population.people)))
    for source_records in records.values():
        source_records.sort(key=lambda r: (r["observed_at"], r["external_id"]))
    return records


def _base_attributes(person: _Person) -> dict:
    return {"first_name": person.first_name, "last_name": person.last_name,
            "city": person.city.name, "country": person.country.code}


def _shop_records(rng, person: _Person, first_order_second: int) -> list[dict]:
    """The customer account at first order; some also checked out as a guest later."""
    identifiers = {"email": person.shop_email}
    if person.shop_phone:
        identifiers["phone"] = person.shop_phone
    elif rng.random() < 0.01:
        identifiers["phone"] = "0000000000"  # a checkout form's placeholder, shared by strangers
    attributes = _base_attributes(person)
    if person.address:
        attributes["postal_address"] = dict(person.address)
    records = [{"external_id": f"cust_{_hex(rng, 12)}", "identifiers": identifiers,
                "attributes": attributes, "observed_at": _iso_one(first_order_second)}]
    if rng.random() < 0.1:
        guest = {"email": _email_variant(rng, person.email)}
        if person.phone is not None:
            guest["phone"] = _pick(rng, list(_phone_formats(person.phone).values()))
        guest_attributes = {"first_name": person.first_name.lower(), "last_name": person.last_name.upper(),
                            "country": person.country.code}
        guest_second = first_order_second + _between(rng, DAY, 60 * DAY)
        records.append({"external_id": f"guest_{_hex(rng, 12)}", "identifiers": guest, "attributes": guest_attributes,
                        "observed_at": _iso_one(min(guest_second, REFERENCE_SECOND - 1))})
    return records


def _web_records(person: _Person, first_visit: int) -> list[dict]:
    """Anonymous first visit, then the login that ties the anonymous id to an e-mail."""
    if not person.anonymous_ids:
        return []
    first_id = person.anonymous_ids[0]
    geo = {"country": person.country.code, "language": person.country.language}
    records = [
        {"external_id": f"session-{first_id}", "identifiers": {"anonymous_id": first_id},
         "attributes": dict(geo), "observed_at": _iso_one(first_visit)},
        {"external_id": f"login-{first_id}",
         "identifiers": {"anonymous_id": first_id, "email": person.email, "user_id": person.user_id},
         "attributes": dict(geo), "observed_at": _iso_one(person.login_second)},
    ]
    if person.second_device_second is not None:
        device_id = person.anonymous_ids[1]
        records.append({"external_id": f"login-{device_id}",
                        "identifiers": {"anonymous_id": device_id, "user_id": person.user_id},
                        "attributes": dict(geo), "observed_at": _iso_one(person.second_device_second)})
    return records


def _crm_record(rng, person: _Person, index: int, spend_cents: int) -> dict:
    person.crm_id = f"CRM-{100000 + index:06d}"  # kept on the person for the ground truth
    identifiers = {"crm_id": person.crm_id,
                   "email": person.email if rng.random() < 0.8 else _email_variant(rng, person.email)}
    if rng.random() < 0.02:
        identifiers["phone"] = _pick(rng, ("0000000000", "-1", "null"))  # filler in a mandatory field
    elif person.phone is not None:
        identifiers["phone"] = _phone_formats(person.phone)["national"]
    attributes = _base_attributes(person) | {"birth_date": person.birth_date, "customer_since": person.customer_since,
                                             "loyalty_tier": _loyalty_tier(spend_cents)}
    if person.address and rng.random() < 0.8:
        attributes["postal_address"] = dict(person.address)
    # The CRM export is a recent snapshot of the contact.
    synced = REFERENCE_SECOND - _between(rng, 3600, 20 * DAY)
    return {"external_id": person.crm_id, "identifiers": identifiers, "attributes": attributes,
            "observed_at": _iso_one(synced)}


def _loyalty_tier(spend_cents: int) -> str:
    for threshold, tier in ((150_000, "platinum"), (60_000, "gold"), (20_000, "silver")):
        if spend_cents >= threshold:
            return tier
    return "bronze"


def _enrichment_record(rng, person: _Person) -> dict:
    """A broker's guesses about a person, keyed by e-mail; loosely right, as brokers are."""
    group = GROUPS[person.group]
    band = min(max(group.income_level + _between(rng, -1, 2), 0), len(INCOME_BANDS) - 1)
    interests = sorted({_pick(rng, group.interests) for _ in range(3)})
    email = person.email if rng.random() < 0.7 else person.email.upper()
    attributes = {"income_band": INCOME_BANDS[band], "interests": interests,
                  "household_size": 1 + int(rng.poisson(group.household_extra))}
    return {"external_id": f"enr-{_hex(rng, 16)}", "identifiers": {"email": email}, "attributes": attributes,
            "observed_at": _iso_one(_below(rng, REFERENCE_SECOND))}


def _unmatched_enrichment_records(rng, customers: int) -> list[dict]:
    """Brokers also send people the shop has never seen, and junk rows."""
    records = []
    for n in range(max(2, customers // 200)):
        records.append({"external_id": f"enr-{_hex(rng, 16)}",
                        "identifiers": {"email": f"prospect.{n:04d}@unknown.example"},
                        "attributes": {"income_band": _pick(rng, INCOME_BANDS), "interests": ["news"],
                                       "household_size": int(1 + rng.poisson(1.0))},
                        "observed_at": _iso_one(_below(rng, REFERENCE_SECOND))})
    for n, junk in enumerate(("test@test.com", "null")):
        records.append({"external_id": f"enr-junk-{n}", "identifiers": {"email": junk},
                        "attributes": {"income_band": "50-100k"}, "observed_at": _iso_one(DAY * (n + 1))})
    return records


def _test_order_records() -> list[dict]:
    """QA orders placed on production with throwaway identifiers."""
    identifiers = ({"email": "test@test.com"}, {"email": "test@test.com", "phone": "0000000000"},
                   {"email": "null", "phone": "-1"})
    return [{"external_id": f"qa-order-{n}", "identifiers": dict(ids),
             "attributes": {"first_name": "Test", "last_name": "Order", "country": "GB"},
             "observed_at": _iso_one(DAY * (30 + n))} for n, ids in enumerate(identifiers)]


# --- Events --------------------------------------------------------------------------------


def _build_events(rng, people: list[_Person], catalogue: _Catalogue, activity: _Activity) -> list[dict]:
    """Events in time order, each naming its person the way the sending system knows them."""
    order = np.lexsort((activity.kind, activity.person, activity.second))
    # Plain lists: indexing numpy scalars one by one would dominate the run time.
    columns = [getattr(activity, name)[order].tolist()
               for name in ("kind", "person", "item", "second", "quantity", "price_cents", "rating")]
    stamps = _iso(activity.second[order])
    coins = rng.random(len(order)).tolist()
    shop_profiles = [_shop_event_profile(rng, p) for p in people]
    item_ids = [it["id"] for it in catalogue.items]
    events = []
    for n, (kind, person, item, second, quantity, price, rating) in enumerate(zip(*columns)):
        who = people[person]
        on_web = kind in (VIEW, ADD_TO_CART) and bool(who.anonymous_ids)
        event = {
            "source": "web" if on_web else "shop",
            "profile": _web_event_profile(who, second, coins[n]) if on_web else dict(shop_profiles[person]),
            "type": EVENT_TYPES[kind], "item_id": item_ids[item], "occurred_at": stamps[n],
            "message_id": f"msg-{n + 1:08d}",
        }
        if kind in (ADD_TO_CART, PURCHASE):
            event["quantity"] = quantity
        if kind == PURCHASE:
            event["price"] = f"{price // 100}.{price % 100:02d}"  # decimal string, as the API returns it
        elif kind == RATING:
            event["rating"] = rating
        events.append(event)
    return events


def _shop_event_profile(rng, person: _Person) -> dict:
    """Orders carry whatever the shop holds: its e-mail variant, sometimes a phone as well."""
    profile = {"email": person.shop_email}
    if person.phone is not None and rng.random() < 0.3:
        profile["phone"] = person.phone.e164
    return profile


def _web_event_profile(person: _Person, second: int, coin: float) -> dict:
    device_time = person.second_device_second
    if device_time is not None and second >= device_time and coin < 0.5:
        return {"anonymous_id": person.anonymous_ids[1], "user_id": person.user_id}
    if second < person.login_second:
        return {"anonymous_id": person.anonymous_ids[0]}
    return {"anonymous_id": person.anonymous_ids[0], "user_id": person.user_id}


# --- Consents ------------------------------------------------------------------------------

# purpose: (share of people who ever answer, share of answers that grant)
CONSENT_RATES = {"analytics": (0.95, 0.8), "personalization": (0.9, 0.7), "marketing": (0.85, 0.4),
                 "enrichment": (0.7, 0.3), "sale_sharing": (0.6, 0.1)}
WITHDRAW_RATE = 0.06  # grants later withdrawn
CONVERT_RATE = 0.02  # refusals later granted


def _build_consents(rng, population: _Population) -> list[dict]:
    changes = []
    for person, first_visit in zip(population.people, population.first_visit.tolist()):
        asked = first_visit + _below(rng, 3 * DAY)  # the banner on the first visit, or the sign-up form
        for purpose in PURPOSES:
            answer_rate, grant_rate = CONSENT_RATES[purpose]
            if rng.random() >= answer_rate:
                continue  # never answered: no consent, no record
            granted = bool(rng.random() < grant_rate)
            email = person.email if rng.random() < 0.8 else _email_variant(rng, person.email)
            changes.append((asked, person.key, purpose, granted, email))
            if rng.random() < (WITHDRAW_RATE if granted else CONVERT_RATE) and asked < REFERENCE_SECOND - DAY:
                later = _between(rng, asked + 3600, REFERENCE_SECOND)
                changes.append((later, person.key, purpose, not granted, person.email))
    changes.sort(key=lambda c: (c[0], c[1], PURPOSES.index(c[2])))
    stamps = _iso([c[0] for c in changes])
    return [{"profile": {"email": email}, "purpose": purpose, "granted": granted, "occurred_at": stamp}
            for (_, _, purpose, granted, email), stamp in zip(changes, stamps)]


# --- Ground truth --------------------------------------------------------------------------


def _build_truth(population: _Population) -> dict[str, dict]:
    truth = {}
    for i, person in enumerate(population.people):
        truth[person.key] = {
            "group": person.group,
            "group_name": GROUPS[person.group].name,
            "canonical_email": person.email,
            "phone_e164": person.phone.e164 if person.phone else None,
            "country": person.country.code,
            "crm_id": person.crm_id,
            "user_id": person.user_id,
            "anonymous_ids": list(person.anonymous_ids),
            "customer_since": person.customer_since,
            "category_preferences": dict(zip(CATEGORY_NAMES, np.round(population.preferences[i], 4).tolist())),
        }
    return truth
