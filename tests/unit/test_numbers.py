import pytest

from whatsapp_core.config import ChannelConfig, MissingCredential
from whatsapp_core.numbers import BusinessNumbers, InvalidNumbers


def test_one_number_given_as_an_int_like_yaml_does():
    numbers = BusinessNumbers.parse(106540352242922, "tok")
    assert numbers.primary == "106540352242922"
    assert numbers.conversation_id("16505551234", "106540352242922") == "16505551234"


def test_list_with_a_number_that_has_its_own_token():
    numbers = BusinessNumbers.parse(["111", {"id": 222, "access_token": "own"}], "default")
    assert [n.id for n in numbers.numbers] == ["111", "222"]
    assert numbers.access_token("111") == "default"
    assert numbers.access_token("222") == "own"
    assert numbers.serves("222") and not numbers.serves("333")


def test_conversation_ids_keep_the_primary_plain_and_suffix_the_others():
    numbers = BusinessNumbers.parse(["111", "222"], "t")
    assert numbers.conversation_id("39333", "111") == "39333"
    assert numbers.conversation_id("39333", "222") == "39333@222"
    assert numbers.address("39333@222") == ("39333", "222")
    assert numbers.address("39333") == ("39333", "111")
    assert numbers.address("weird@999") == ("weird@999", "111")


@pytest.mark.parametrize("value", [[], [""], ["1", "1"], [{"access_token": "x"}]])
def test_invalid_number_lists(value):
    with pytest.raises(InvalidNumbers):
        BusinessNumbers.parse(value, "t")


def test_config_reads_the_list_and_names_the_problem():
    base = {"verify_token": "v", "app_secret": "s", "access_token": "a"}
    config = ChannelConfig.from_credentials({**base, "phone_number_id": ["1", "2"]})
    assert config.phone_number_id == "1" and config.numbers.serves("2")
    with pytest.raises(MissingCredential, match="listed twice"):
        ChannelConfig.from_credentials({**base, "phone_number_id": ["1", "1"]})
    with pytest.raises(MissingCredential, match="phone_number_id"):
        ChannelConfig.from_credentials(base)
