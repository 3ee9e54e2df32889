"""Postman's dynamic variables: exact formats for the exact ones, plausibility for the rest."""

from __future__ import annotations

import ipaddress
import re
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime

import pytest

from runtime.dynamic import DYNAMIC_NAMES, dynamic_value

# Postman's documented list of dynamic variables.
DOCUMENTED = """
$guid $timestamp $isoTimestamp $randomUUID
$randomAlphaNumeric $randomBoolean $randomInt $randomColor $randomHexColor $randomAbbreviation
$randomIP $randomIPV6 $randomMACAddress $randomPassword $randomLocale $randomUserAgent
$randomProtocol $randomSemver
$randomFirstName $randomLastName $randomFullName $randomNamePrefix $randomNameSuffix
$randomJobArea $randomJobDescriptor $randomJobTitle $randomJobType
$randomPhoneNumber $randomPhoneNumberExt $randomCity $randomStreetName $randomStreetAddress
$randomCountry $randomCountryCode $randomLatitude $randomLongitude
$randomAvatarImage $randomImageUrl $randomAbstractImage $randomAnimalsImage $randomBusinessImage
$randomCatsImage $randomCityImage $randomFoodImage $randomNightlifeImage $randomFashionImage
$randomPeopleImage $randomNatureImage $randomSportsImage $randomTransportImage $randomImageDataUri
$randomBankAccount $randomBankAccountName $randomCreditCardMask $randomBankAccountBic
$randomBankAccountIban $randomTransactionType $randomCurrencyCode $randomCurrencyName
$randomCurrencySymbol $randomBitcoin
$randomCompanyName $randomCompanySuffix $randomBs $randomBsAdjective $randomBsBuzz $randomBsNoun
$randomCatchPhrase $randomCatchPhraseAdjective $randomCatchPhraseDescriptor $randomCatchPhraseNoun
$randomDatabaseColumn $randomDatabaseType $randomDatabaseCollation $randomDatabaseEngine
$randomDateFuture $randomDatePast $randomDateRecent $randomWeekday $randomMonth
$randomDomainName $randomDomainSuffix $randomDomainWord $randomEmail $randomExampleEmail
$randomUserName $randomUrl
$randomFileName $randomFileType $randomFileExt $randomCommonFileName $randomCommonFileType
$randomCommonFileExt $randomFilePath $randomDirectoryPath $randomMimeType
$randomPrice $randomProduct $randomProductAdjective $randomProductMaterial $randomProductName
$randomDepartment
$randomNoun $randomVerb $randomIngverb $randomAdjective $randomAdverb $randomWord $randomWords
$randomPhrase
$randomLoremWord $randomLoremWords $randomLoremSentence $randomLoremSentences
$randomLoremParagraph $randomLoremParagraphs $randomLoremText $randomLoremSlug $randomLoremLines
"""
POSTMAN_NAMES = frozenset(DOCUMENTED.split())

JS_DATE = "%a %b %d %Y %H:%M:%S GMT+0000 (Coordinated Universal Time)"

PLAUSIBLE = {
    "$randomAlphaNumeric": re.compile(r"[a-z0-9]"),
    "$randomBoolean": re.compile(r"true|false"),
    "$randomHexColor": re.compile(r"#[0-9a-f]{6}"),
    "$randomMACAddress": re.compile(r"([0-9a-f]{2}:){5}[0-9a-f]{2}"),
    "$randomPassword": re.compile(r"[A-Za-z0-9]{15}"),
    "$randomProtocol": re.compile(r"https?"),
    "$randomSemver": re.compile(r"\d+\.\d+\.\d+"),
    "$randomPhoneNumberExt": re.compile(r"\d{2}-\d{3}-\d{3}-\d{4}"),
    "$randomCountryCode": re.compile(r"[A-Z]{2}"),
    "$randomLatitude": re.compile(r"-?\d{1,2}\.\d{4}"),
    "$randomLongitude": re.compile(r"-?\d{1,3}\.\d{4}"),
    "$randomBankAccount": re.compile(r"\d{8}"),
    "$randomCreditCardMask": re.compile(r"\d{4}"),
    "$randomBankAccountName": re.compile(r"[A-Za-z ]+ Account"),
    "$randomBankAccountBic": re.compile(r"[A-Z]{6}[A-Z0-9]{2}([A-Z0-9]{3})?"),
    "$randomBankAccountIban": re.compile(r"[A-Z]{2}\d{2}[A-Z0-9]{10,30}"),
    "$randomCurrencyCode": re.compile(r"[A-Z]{3}"),
    "$randomBitcoin": re.compile(r"[13][1-9A-HJ-NP-Za-km-z]{25,33}"),
    "$randomEmail": re.compile(r"[^@\s]+@[^@\s]+\.[a-z]+"),
    "$randomExampleEmail": re.compile(r"[^@\s]+@example\.(com|net|org)"),
    "$randomUrl": re.compile(r"https?://\S+"),
    "$randomAvatarImage": re.compile(r"https://\S+"),
    "$randomImageUrl": re.compile(r"https://\S+"),
    "$randomCatsImage": re.compile(r"https://\S+/cats\S*"),
    "$randomImageDataUri": re.compile(r"data:image/svg\+xml;charset=UTF-8,\S+"),
    "$randomFilePath": re.compile(r"/\S+\.\w+"),
    "$randomDirectoryPath": re.compile(r"/\S*"),
    "$randomMimeType": re.compile(r"[a-z]+/\S+"),
    "$randomCommonFileName": re.compile(r"\w+\.\w+"),
    "$randomPrice": re.compile(r"\d{1,4}\.\d{2}"),
    "$randomProductName": re.compile(r"\w+ \w+ \w+"),
    "$randomJobTitle": re.compile(r"\w+ \w+ \w+"),
    "$randomLoremSlug": re.compile(r"\w+(-\w+)+"),
    "$randomWeekday": re.compile(r"(Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day"),
    "$randomMonth": re.compile(
        r"January|February|March|April|May|June|July|August|September|October|November|December"
    ),
}


def test_the_guid_and_uuid_are_fresh_version_4_uuids() -> None:
    for name in ("$guid", "$randomUUID"):
        first, second = dynamic_value(name), dynamic_value(name)
        assert first is not None and second is not None
        assert first != second
        for text in (first, second):
            parsed = uuid.UUID(text)
            assert parsed.version == 4
            assert str(parsed) == text  # lowercase, hyphenated


def test_the_timestamp_is_the_current_unix_time_in_whole_seconds() -> None:
    before = int(time.time())
    value = dynamic_value("$timestamp")
    after = int(time.time())
    assert value is not None and re.fullmatch(r"\d+", value)
    assert before <= int(value) <= after


def test_the_iso_timestamp_is_utc_with_milliseconds_and_z() -> None:
    before = datetime.now(UTC)
    value = dynamic_value("$isoTimestamp")
    after = datetime.now(UTC)
    assert value is not None
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", value)
    moment = datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert before.replace(microsecond=before.microsecond // 1000 * 1000) <= moment <= after


def test_random_int_covers_0_to_1000_inclusive_and_varies() -> None:
    # 20000 draws miss a given value of 1001 with a probability of about 2e-9.
    values = [dynamic_value("$randomInt") for _ in range(20000)]
    numbers = [int(value) for value in values if value is not None and value.isdigit()]
    assert len(numbers) == len(values)
    assert min(numbers) == 0 and max(numbers) == 1000
    assert len(set(numbers)) > 900


def test_every_documented_name_is_known() -> None:
    assert len(POSTMAN_NAMES) == 119
    assert POSTMAN_NAMES <= DYNAMIC_NAMES
    assert all(name.startswith("$") for name in DYNAMIC_NAMES)


@pytest.mark.parametrize("name", sorted(DYNAMIC_NAMES))
def test_every_name_yields_a_plausible_non_empty_string(name: str) -> None:
    for _ in range(5):
        value = dynamic_value(name)
        assert isinstance(value, str) and value.strip(), name
        assert "{{" not in value
        pattern = PLAUSIBLE.get(name)
        if pattern is not None:
            assert pattern.fullmatch(value), f"{name} gave {value!r}"


def test_ip_addresses_parse() -> None:
    for _ in range(20):
        assert ipaddress.ip_address(dynamic_value("$randomIP") or "").version == 4
        assert ipaddress.ip_address(dynamic_value("$randomIPV6") or "").version == 6


@pytest.mark.parametrize(
    ("name", "low_days", "high_days"),
    [("$randomDateFuture", 0, 366), ("$randomDatePast", -366, 0), ("$randomDateRecent", -1.01, 0)],
)
def test_dates_print_like_javascript_and_fall_in_their_window(
    name: str, low_days: float, high_days: float
) -> None:
    now = datetime.now(UTC)
    for _ in range(20):
        moment = datetime.strptime(dynamic_value(name) or "", JS_DATE).replace(tzinfo=UTC)
        offset_days = (moment - now).total_seconds() / 86400
        assert low_days <= offset_days <= high_days + 0.001, (name, moment)


def test_unknown_names_give_none() -> None:
    assert dynamic_value("$notAPostmanVariable") is None
    assert dynamic_value("guid") is None  # the leading $ is part of the name
    assert dynamic_value("") is None
    assert dynamic_value("$") is None


def test_faker_is_imported_only_when_a_faker_backed_name_is_used() -> None:
    program = (
        "import sys\n"
        "from runtime.dynamic import dynamic_value\n"
        "for name in ('$guid', '$timestamp', '$isoTimestamp', '$randomInt', '$randomUUID',"
        " '$randomAbbreviation', '$unknown'):\n"
        "    dynamic_value(name)\n"
        "assert 'faker' not in sys.modules, 'faker imported too early'\n"
        "assert dynamic_value('$randomFirstName')\n"
        "assert 'faker' in sys.modules\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=120, check=False
    )
    assert completed.returncode == 0, completed.stderr
