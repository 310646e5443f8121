"""Authenticated encryption of stored provider keys (Fernet: AES-128-CBC + HMAC-SHA256).

The keys come from GATEWAY_ENCRYPTION_KEYS (comma-separated, newest first) and live outside the
database, so a stolen database file holds no usable provider key. MultiFernet decrypts with any
listed key and encrypts with the first, which is what key rotation needs.
"""
from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class VaultError(RuntimeError):
    """The encryption keys are missing, malformed, or cannot read what is stored."""


class Vault:
    def __init__(self, keys_setting):
        keys = [k.strip() for k in (keys_setting or "").split(",") if k.strip()]
        if not keys:
            raise VaultError("GATEWAY_ENCRYPTION_KEYS is not set: provider keys cannot be stored or read. "
                             "Set it to one or more Fernet keys (comma-separated, newest first).")
        try:
            self._fernet = MultiFernet([Fernet(k.encode()) for k in keys])
        except ValueError:
            raise VaultError("GATEWAY_ENCRYPTION_KEYS holds a value that is not a Fernet key "
                             "(32 url-safe base64-encoded bytes).") from None

    def encrypt(self, plaintext):
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext):
        """:raise VaultError: the ciphertext was not made with any of the configured keys."""
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken:
            raise VaultError("A stored provider key cannot be decrypted with GATEWAY_ENCRYPTION_KEYS: "
                             "the key that encrypted it is missing from the list.") from None

    def rotate(self, ciphertext):
        """Re-encrypt under the newest key (after which older keys may be removed)."""
        try:
            return self._fernet.rotate(ciphertext.encode()).decode()
        except InvalidToken:
            raise VaultError("A stored provider key cannot be rotated: no configured key decrypts it.") from None
