"""Postman's dynamic variables: ``{{$guid}}``, ``{{$timestamp}}``, ``{{$randomEmail}}`` ...

Every call of :func:`dynamic_value` produces a fresh value, as Postman does for
each occurrence of a dynamic variable in a request.

Two kinds of generators live here. The exact ones (``$guid``, ``$randomUUID``,
``$timestamp``, ``$isoTimestamp``, ``$randomInt``) and those drawn from short
word lists need only the standard library. The rest of the ``$random*`` family
uses the ``faker`` package, which is slow to import, so it is imported on the
first use of such a name and never by requests that use none.
"""

from __future__ import annotations

import functools
import posixpath
import random
import string
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from faker import Faker

__all__ = ["DYNAMIC_NAMES", "dynamic_value"]

# Short word lists for generators faker has no provider for (tech jargon,
# products, databases, jobs). Values only need to be plausible.
_ABBREVIATIONS = (
    "ADP", "AGP", "AI", "CSS", "EXE", "FTP", "GB", "HDD", "HTTP", "JSON", "PCI",
    "PNG", "RAM", "RSS", "SAS", "SCSI", "SMS", "SMTP", "SQL", "SSL", "TCP", "USB", "XML",
)  # fmt: skip
_NOUNS = (
    "driver", "protocol", "bandwidth", "panel", "microchip", "program", "port", "card",
    "array", "interface", "system", "sensor", "firewall", "pixel", "alarm", "feed",
    "monitor", "application", "transmitter", "bus", "circuit", "capacitor", "matrix",
)  # fmt: skip
_VERBS = (
    "back up", "bypass", "hack", "override", "compress", "copy", "navigate", "index",
    "connect", "generate", "quantify", "calculate", "synthesize", "transmit", "reboot", "parse",
)  # fmt: skip
_INGVERBS = (
    "backing up", "bypassing", "hacking", "overriding", "compressing", "copying",
    "navigating", "indexing", "connecting", "generating", "quantifying", "calculating",
    "synthesizing", "transmitting", "rebooting", "parsing",
)  # fmt: skip
_ADJECTIVES = (
    "auxiliary", "primary", "back-end", "digital", "open-source", "virtual", "cross-platform",
    "redundant", "online", "haptic", "multi-byte", "wireless", "neural", "optical", "mobile",
)  # fmt: skip
_ADVERBS = (
    "quickly", "silently", "carefully", "remotely", "eagerly", "gracefully", "rapidly",
    "quietly", "boldly", "swiftly", "reliably", "securely",
)  # fmt: skip
_JOB_DESCRIPTORS = (
    "Lead", "Senior", "Direct", "Corporate", "Dynamic", "Future", "Product", "National",
    "Regional", "District", "Central", "Global", "Customer", "Internal", "Chief", "Principal",
)  # fmt: skip
_JOB_AREAS = (
    "Solutions", "Program", "Brand", "Security", "Research", "Marketing", "Integration",
    "Operations", "Infrastructure", "Communications", "Quality", "Mobility", "Accounts",
    "Data", "Creative", "Configuration", "Usability", "Metrics", "Applications",
)  # fmt: skip
_JOB_TYPES = (
    "Supervisor", "Associate", "Executive", "Liaison", "Officer", "Manager", "Engineer",
    "Specialist", "Director", "Coordinator", "Administrator", "Architect", "Analyst",
    "Designer", "Planner", "Technician", "Developer", "Consultant", "Strategist",
)  # fmt: skip
_PRODUCTS = (
    "Chair", "Car", "Computer", "Keyboard", "Mouse", "Bike", "Ball", "Gloves", "Pants",
    "Shirt", "Table", "Shoes", "Hat", "Towels", "Soap", "Tuna", "Cheese", "Pizza", "Salad",
)  # fmt: skip
_PRODUCT_ADJECTIVES = (
    "Small", "Ergonomic", "Rustic", "Intelligent", "Gorgeous", "Incredible", "Fantastic",
    "Practical", "Sleek", "Awesome", "Generic", "Handcrafted", "Refined", "Unbranded", "Tasty",
)  # fmt: skip
_MATERIALS = (
    "Steel", "Wooden", "Concrete", "Plastic", "Cotton", "Granite", "Rubber", "Metal",
    "Soft", "Fresh", "Frozen",
)  # fmt: skip
_DEPARTMENTS = (
    "Books", "Movies", "Music", "Games", "Electronics", "Computers", "Home", "Garden",
    "Tools", "Grocery", "Health", "Beauty", "Toys", "Kids", "Baby", "Clothing", "Shoes",
    "Sports", "Outdoors", "Automotive", "Industrial",
)  # fmt: skip
_DB_COLUMNS = (
    "id", "title", "name", "email", "phone", "token", "group", "category", "password",
    "comment", "avatar", "status", "createdAt", "updatedAt",
)  # fmt: skip
_DB_TYPES = (
    "int", "varchar", "text", "date", "datetime", "tinyint", "time", "timestamp",
    "smallint", "bigint", "decimal", "float", "double", "bit", "boolean", "blob", "enum",
)  # fmt: skip
_DB_COLLATIONS = (
    "utf8_unicode_ci", "utf8_general_ci", "utf8_bin", "ascii_bin", "ascii_general_ci",
    "cp1250_bin", "cp1250_general_ci",
)  # fmt: skip
_DB_ENGINES = ("InnoDB", "MyISAM", "MEMORY", "CSV", "BLACKHOLE", "ARCHIVE")
_BANK_ACCOUNT_KINDS = (
    "Checking", "Savings", "Money Market", "Investment", "Home Loan", "Credit Card",
    "Auto Loan", "Personal Loan",
)  # fmt: skip
_TRANSACTION_TYPES = ("deposit", "withdrawal", "payment", "invoice")
_COMMON_FILE_TYPES = ("application", "audio", "image", "text", "video")
_COMMON_FILE_EXTENSIONS = (
    "pdf", "mpeg", "wav", "png", "jpeg", "gif", "mp4", "mp2", "m2v", "htm", "html", "txt",
)  # fmt: skip
_IMAGE_CATEGORIES = {
    "$randomAbstractImage": "abstract",
    "$randomAnimalsImage": "animals",
    "$randomBusinessImage": "business",
    "$randomCatsImage": "cats",
    "$randomCityImage": "city",
    "$randomFoodImage": "food",
    "$randomNightlifeImage": "nightlife",
    "$randomFashionImage": "fashion",
    "$randomPeopleImage": "people",
    "$randomNatureImage": "nature",
    "$randomSportsImage": "sports",
    "$randomTransportImage": "transport",
}
_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_YEAR = timedelta(days=365)
_DAY = timedelta(days=1)


def _pick(words: Sequence[str]) -> Callable[[], str]:
    return lambda: random.choice(words)


def _iso_timestamp() -> str:
    """UTC now as ``2020-06-09T21:10:36.177Z`` (JavaScript's ``toISOString``)."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds")
    return now.replace("+00:00", "Z")


def _js_date(moment: datetime) -> str:
    """A date as JavaScript's ``Date.prototype.toString`` prints it, in UTC."""
    return moment.strftime("%a %b %d %Y %H:%M:%S GMT+0000 (Coordinated Universal Time)")


def _date_within(span: timedelta, direction: int) -> str:
    """A random moment up to ``span`` away from now, ahead (1) or back (-1)."""
    offset = timedelta(seconds=random.uniform(1, span.total_seconds()))
    return _js_date(datetime.now(UTC) + direction * offset)


def _digits(count: int) -> str:
    return "".join(random.choices(string.digits, k=count))


def _bitcoin_address() -> str:
    """A legacy-format address: '1' or '3', then 25 to 33 base58 characters."""
    return random.choice("13") + "".join(random.choices(_BASE58, k=random.randint(25, 33)))


def _image_data_uri() -> str:
    """A small SVG image with a random fill colour, as a data URI."""
    colour = f"#{random.randrange(0x1000000):06x}"
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="640" height="480">'
        f'<rect width="100%" height="100%" fill="{colour}"/></svg>'
    )
    return "data:image/svg+xml;charset=UTF-8," + quote(svg)


def _category_image(category: str) -> Callable[[], str]:
    return lambda: f"https://loremflickr.com/640/480/{category}?lock={random.randint(1, 9999)}"


def _hacker_phrase() -> str:
    verbs, nouns = random.sample(_VERBS, 2), random.sample(_NOUNS, 2)
    adjective, abbreviation = random.choice(_ADJECTIVES), random.choice(_ABBREVIATIONS)
    return (
        f"Try to {verbs[0]} the {abbreviation} {nouns[0]}, "
        f"maybe it will {verbs[1]} the {adjective} {nouns[1]}!"
    )


_STDLIB_GENERATORS: dict[str, Callable[[], str]] = {
    "$guid": lambda: str(uuid.uuid4()),
    "$randomUUID": lambda: str(uuid.uuid4()),
    "$timestamp": lambda: str(int(time.time())),
    "$isoTimestamp": _iso_timestamp,
    "$randomInt": lambda: str(random.randint(0, 1000)),
    "$randomAlphaNumeric": lambda: random.choice(string.ascii_lowercase + string.digits),
    "$randomBoolean": lambda: random.choice(("true", "false")),
    "$randomAbbreviation": _pick(_ABBREVIATIONS),
    "$randomProtocol": lambda: random.choice(("http", "https")),
    "$randomSemver": lambda: ".".join(str(random.randint(0, 9)) for _ in range(3)),
    "$randomJobArea": _pick(_JOB_AREAS),
    "$randomJobDescriptor": _pick(_JOB_DESCRIPTORS),
    "$randomJobType": _pick(_JOB_TYPES),
    "$randomJobTitle": lambda: " ".join(
        random.choice(words) for words in (_JOB_DESCRIPTORS, _JOB_AREAS, _JOB_TYPES)
    ),
    "$randomLatitude": lambda: f"{random.uniform(-90, 90):.4f}",
    "$randomLongitude": lambda: f"{random.uniform(-180, 180):.4f}",
    "$randomAvatarImage": lambda: f"https://i.pravatar.cc/128?img={random.randint(1, 70)}",
    "$randomImageUrl": lambda: f"https://picsum.photos/seed/{_digits(6)}/640/480",
    "$randomImageDataUri": _image_data_uri,
    "$randomBankAccount": lambda: _digits(8),
    "$randomBankAccountName": lambda: random.choice(_BANK_ACCOUNT_KINDS) + " Account",
    "$randomCreditCardMask": lambda: _digits(4),
    "$randomTransactionType": _pick(_TRANSACTION_TYPES),
    "$randomBitcoin": _bitcoin_address,
    "$randomDatabaseColumn": _pick(_DB_COLUMNS),
    "$randomDatabaseType": _pick(_DB_TYPES),
    "$randomDatabaseCollation": _pick(_DB_COLLATIONS),
    "$randomDatabaseEngine": _pick(_DB_ENGINES),
    "$randomDateFuture": lambda: _date_within(_YEAR, 1),
    "$randomDatePast": lambda: _date_within(_YEAR, -1),
    "$randomDateRecent": lambda: _date_within(_DAY, -1),
    "$randomCommonFileType": _pick(_COMMON_FILE_TYPES),
    "$randomCommonFileExt": _pick(_COMMON_FILE_EXTENSIONS),
    "$randomPrice": lambda: f"{random.uniform(1, 1000):.2f}",
    "$randomProduct": _pick(_PRODUCTS),
    "$randomProductAdjective": _pick(_PRODUCT_ADJECTIVES),
    "$randomProductMaterial": _pick(_MATERIALS),
    "$randomProductName": lambda: " ".join(
        random.choice(words) for words in (_PRODUCT_ADJECTIVES, _MATERIALS, _PRODUCTS)
    ),
    "$randomDepartment": _pick(_DEPARTMENTS),
    "$randomNoun": _pick(_NOUNS),
    "$randomVerb": _pick(_VERBS),
    "$randomIngverb": _pick(_INGVERBS),
    "$randomAdjective": _pick(_ADJECTIVES),
    "$randomAdverb": _pick(_ADVERBS),
    "$randomPhrase": _hacker_phrase,
    **{name: _category_image(category) for name, category in _IMAGE_CATEGORIES.items()},
}


def _company_word(fake: Faker, list_names: tuple[str, ...], position: int) -> str:
    """One word of faker's company phrase lists (their attribute name varies by release)."""
    from faker.providers.company.en_US import Provider

    for list_name in list_names:
        word_lists = getattr(Provider, list_name, None)
        if word_lists:
            return str(fake.random_element(word_lists[position]))
    return fake.word()


def _bs_word(position: int) -> Callable[[Faker], str]:
    return lambda fake: _company_word(fake, ("bsWords", "bs_words"), position)


def _catch_phrase_word(position: int) -> Callable[[Faker], str]:
    names = ("catch_phrase_words", "catchPhraseWords")
    return lambda fake: _company_word(fake, names, position)


def _common_file_name(fake: Faker) -> str:
    return f"{fake.word()}_{fake.word()}.{random.choice(_COMMON_FILE_EXTENSIONS)}"


def _directory_path(fake: Faker) -> str:
    return posixpath.dirname(fake.file_path(depth=random.randint(1, 3)))


_FAKER_GENERATORS: dict[str, Callable[[Faker], str]] = {
    "$randomColor": lambda fake: fake.safe_color_name(),
    "$randomHexColor": lambda fake: fake.hex_color(),
    "$randomIP": lambda fake: fake.ipv4(),
    "$randomIPV6": lambda fake: fake.ipv6(),
    "$randomMACAddress": lambda fake: fake.mac_address(),
    "$randomPassword": lambda fake: fake.password(length=15, special_chars=False),
    "$randomLocale": lambda fake: fake.language_code(),
    "$randomUserAgent": lambda fake: fake.user_agent(),
    "$randomFirstName": lambda fake: fake.first_name(),
    "$randomLastName": lambda fake: fake.last_name(),
    "$randomFullName": lambda fake: fake.name(),
    "$randomNamePrefix": lambda fake: fake.prefix(),
    "$randomNameSuffix": lambda fake: fake.suffix(),
    "$randomPhoneNumber": lambda fake: fake.phone_number(),
    "$randomPhoneNumberExt": lambda fake: fake.numerify("##-###-###-####"),
    "$randomCity": lambda fake: fake.city(),
    "$randomStreetName": lambda fake: fake.street_name(),
    "$randomStreetAddress": lambda fake: fake.street_address(),
    "$randomCountry": lambda fake: fake.country(),
    "$randomCountryCode": lambda fake: fake.country_code(),
    "$randomBankAccountBic": lambda fake: fake.swift(),
    "$randomBankAccountIban": lambda fake: fake.iban(),
    "$randomCurrencyCode": lambda fake: fake.currency_code(),
    "$randomCurrencyName": lambda fake: fake.currency_name(),
    "$randomCurrencySymbol": lambda fake: fake.currency_symbol(),
    "$randomCompanyName": lambda fake: fake.company(),
    "$randomCompanySuffix": lambda fake: fake.company_suffix(),
    "$randomBs": lambda fake: fake.bs(),
    "$randomBsBuzz": _bs_word(0),
    "$randomBsAdjective": _bs_word(1),
    "$randomBsNoun": _bs_word(2),
    "$randomCatchPhrase": lambda fake: fake.catch_phrase(),
    "$randomCatchPhraseAdjective": _catch_phrase_word(0),
    "$randomCatchPhraseDescriptor": _catch_phrase_word(1),
    "$randomCatchPhraseNoun": _catch_phrase_word(2),
    "$randomWeekday": lambda fake: fake.day_of_week(),
    "$randomMonth": lambda fake: fake.month_name(),
    "$randomDomainName": lambda fake: fake.domain_name(),
    "$randomDomainSuffix": lambda fake: fake.tld(),
    "$randomDomainWord": lambda fake: fake.domain_word(),
    "$randomEmail": lambda fake: fake.email(),
    "$randomExampleEmail": lambda fake: (
        f"{fake.user_name()}@example.{random.choice(('com', 'net', 'org'))}"
    ),
    "$randomUserName": lambda fake: fake.user_name(),
    "$randomUrl": lambda fake: fake.url(),
    "$randomFileName": lambda fake: fake.file_name(),
    "$randomFileType": lambda fake: fake.mime_type().split("/")[0],
    "$randomFileExt": lambda fake: fake.file_extension(),
    "$randomCommonFileName": _common_file_name,
    "$randomFilePath": lambda fake: fake.file_path(depth=random.randint(1, 3)),
    "$randomDirectoryPath": _directory_path,
    "$randomMimeType": lambda fake: fake.mime_type(),
    "$randomWord": lambda fake: fake.word(),
    "$randomWords": lambda fake: " ".join(fake.words(nb=random.randint(2, 5))),
    "$randomLoremWord": lambda fake: fake.word(),
    "$randomLoremWords": lambda fake: " ".join(fake.words(nb=3)),
    "$randomLoremSentence": lambda fake: fake.sentence(),
    "$randomLoremSentences": lambda fake: " ".join(fake.sentences(nb=random.randint(2, 6))),
    "$randomLoremParagraph": lambda fake: fake.paragraph(),
    # Postman separates generated paragraphs with "\n \r".
    "$randomLoremParagraphs": lambda fake: "\n \r".join(fake.paragraphs(nb=3)),
    "$randomLoremText": lambda fake: fake.text(),
    "$randomLoremSlug": lambda fake: "-".join(fake.words(nb=3)),
    "$randomLoremLines": lambda fake: "\n".join(fake.sentences(nb=random.randint(1, 5))),
}

DYNAMIC_NAMES: frozenset[str] = frozenset(_STDLIB_GENERATORS) | frozenset(_FAKER_GENERATORS)
"""Every dynamic variable name this module knows, each with its leading ``$``."""


@functools.cache
def _faker() -> Faker:
    from faker import Faker

    return Faker("en_US")


def dynamic_value(name: str) -> str | None:
    """A fresh value for the dynamic variable ``name``, or None if it is unknown.

    Args:
        name: the variable name as written between the braces, with its
            leading ``$`` (``"$guid"``, ``"$randomEmail"``).

    Returns:
        The generated value as a string; None for a name Postman does not
        define, so that the caller leaves ``{{$name}}`` as written.
    """
    generator = _STDLIB_GENERATORS.get(name)
    if generator is not None:
        return generator()
    faker_generator = _FAKER_GENERATORS.get(name)
    if faker_generator is None:
        return None
    return faker_generator(_faker())
