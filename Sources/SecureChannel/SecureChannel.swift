// SecureChannel
