"""mask() and mask_inplace(): every length, alignment and buffer type, on both codec twins."""

import array
import itertools
import operator

import pytest

KEY = b"\x37\xfa\x21\x3d"
LENGTHS = [*range(71), 125, 126, 127, 128, 255, 256, 511, 512, 513, 1000, 4099, 65536 + 5, (1 << 20) + 3]


def reference_mask(data, key):
    """Byte-by-byte XOR with the key repeated: the definition in RFC 6455 section 5.3."""
    return bytes(map(operator.xor, bytes(data), itertools.cycle(bytes(key))))


def sample(n, seed=0):
    """n bytes that differ from position to position, so misplaced key bytes show up."""
    return bytes((i * 131 + seed * 7 + (i >> 8)) & 0xFF for i in range(n))


@pytest.mark.parametrize("n", LENGTHS)
def test_mask_every_length(codec, n):
    data = sample(n)
    masked = codec.mask(data, KEY)
    assert type(masked) is bytes
    assert masked == reference_mask(data, KEY)
    assert codec.mask(masked, KEY) == data


@pytest.mark.parametrize("n", LENGTHS)
def test_mask_inplace_every_length(codec, n):
    data = sample(n)
    buffer = bytearray(data)
    assert codec.mask_inplace(buffer, KEY) is None
    assert buffer == reference_mask(data, KEY)
    codec.mask_inplace(buffer, KEY)
    assert buffer == data


@pytest.mark.parametrize("offset", range(16))
@pytest.mark.parametrize("n", [0, 1, 3, 4, 5, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 600, 4097])
def test_every_alignment(codec, offset, n):
    """Views starting at any offset of a buffer are masked from their own first byte."""
    backing = bytearray(sample(offset + n + 16, seed=1))
    untouched = bytes(backing)
    view = memoryview(backing)[offset : offset + n]
    expected = reference_mask(view, KEY)
    assert codec.mask(view, KEY) == expected
    codec.mask_inplace(view, KEY)
    assert backing[offset : offset + n] == expected
    # Bytes around the view are never written.
    assert backing[:offset] == untouched[:offset]
    assert backing[offset + n :] == untouched[offset + n :]


@pytest.mark.parametrize("offset", [0, 1, 7, 16, 31])
def test_buffers_larger_than_the_cache(codec, offset):
    """From a few MiB the compiled kernel writes around the cache; any alignment still holds."""
    n = (8 << 20) + 13
    backing = bytearray(sample(256, seed=2) * ((offset + n) // 256 + 1))
    view = memoryview(backing)[offset : offset + n]
    repeated_key = (KEY * (n // 4 + 1))[:n]
    # XOR of two big integers: the reference for megabytes in milliseconds.
    expected = (int.from_bytes(view, "big") ^ int.from_bytes(repeated_key, "big")).to_bytes(n, "big")
    assert codec.mask(view, KEY) == expected
    codec.mask_inplace(view, KEY)
    assert view == expected


@pytest.mark.parametrize(
    "make",
    [bytes, bytearray, memoryview, lambda b: memoryview(bytearray(b)), lambda b: array.array("B", b)],
    ids=["bytes", "bytearray", "memoryview", "writable-memoryview", "array-B"],
)
@pytest.mark.parametrize("n", [0, 7, 125, 1024])
def test_mask_accepts_any_bytes_like(codec, make, n):
    data = sample(n)
    assert codec.mask(make(data), KEY) == reference_mask(data, KEY)


def test_mask_items_wider_than_a_byte_are_masked_as_raw_bytes(codec):
    words = array.array("I", range(300))
    raw = words.tobytes()
    assert codec.mask(words, KEY) == reference_mask(raw, KEY)
    codec.mask_inplace(words, KEY)
    assert words.tobytes() == reference_mask(raw, KEY)


@pytest.mark.parametrize("n", [10, 1500])
def test_strided_views(codec, n):
    backing = bytearray(sample(2 * n))
    every_other = memoryview(backing)[::2]
    expected = reference_mask(every_other, KEY)
    assert codec.mask(every_other, KEY) == expected
    codec.mask_inplace(every_other, KEY)
    assert backing[::2] == expected
    assert backing[1::2] == sample(2 * n)[1::2]


@pytest.mark.parametrize("n", [0, 64, 1024])
def test_mask_inplace_array_and_memoryview(codec, n):
    data = sample(n)
    items = array.array("B", data)
    codec.mask_inplace(items, KEY)
    assert items.tobytes() == reference_mask(data, KEY)
    backing = bytearray(data)
    codec.mask_inplace(memoryview(backing), KEY)
    assert backing == reference_mask(data, KEY)


@pytest.mark.parametrize(
    "readonly",
    [b"abcdefgh", memoryview(b"abcdefgh"), memoryview(bytearray(8)).toreadonly()],
    ids=["bytes", "memoryview-of-bytes", "readonly-memoryview"],
)
def test_mask_inplace_rejects_readonly_buffers(codec, readonly):
    with pytest.raises(TypeError):
        codec.mask_inplace(readonly, KEY)


@pytest.mark.parametrize("key", [b"", b"abc", b"abcde", bytes(16)])
def test_key_must_be_four_bytes(codec, key):
    with pytest.raises(ValueError):
        codec.mask(b"data", key)
    with pytest.raises(ValueError):
        codec.mask_inplace(bytearray(b"data"), key)
    # Even an empty buffer checks its key.
    with pytest.raises(ValueError):
        codec.mask(b"", key)


@pytest.mark.parametrize("key", ["abcd", 4, None, 1.5])
def test_key_must_be_bytes_like(codec, key):
    with pytest.raises(TypeError):
        codec.mask(b"data", key)
    with pytest.raises(TypeError):
        codec.mask_inplace(bytearray(b"data"), key)


@pytest.mark.parametrize("key", [bytearray(KEY), memoryview(KEY), array.array("B", KEY)])
def test_key_may_be_any_bytes_like(codec, key):
    assert codec.mask(b"payload!", key) == reference_mask(b"payload!", KEY)


@pytest.mark.parametrize("data", ["text", 5, None, [1, 2, 3]])
def test_data_must_be_bytes_like(codec, data):
    with pytest.raises(TypeError):
        codec.mask(data, KEY)
    with pytest.raises(TypeError):
        codec.mask_inplace(data, KEY)


def test_zero_key_is_identity_and_mask_copies(codec):
    data = bytearray(sample(300))
    masked = codec.mask(data, bytes(4))
    assert masked == data
    data[0] ^= 0xFF
    assert masked != data  # the result is a copy, not a view of the input
