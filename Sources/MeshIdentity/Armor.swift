import Foundation

/// PEM-style text armor around a binary (protobuf) body, so identity files are printable,
/// copy-pasteable and self-describing:
///
///     -----BEGIN HOSTMESH CERTIFICATE-----
///     <base64, 64 columns>
///     -----END HOSTMESH CERTIFICATE-----
public enum Armor {
    /// Wraps `body` with the given label (e.g. "HOSTMESH CERTIFICATE").
    public static func encode(_ body: [UInt8], label: String) -> String {
        let b64 = Data(body).base64EncodedString()
        var lines = ["-----BEGIN \(label)-----"]
        var i = b64.startIndex
        while i < b64.endIndex {
            let j = b64.index(i, offsetBy: 64, limitedBy: b64.endIndex) ?? b64.endIndex
            lines.append(String(b64[i..<j])); i = j
        }
        lines.append("-----END \(label)-----")
        return lines.joined(separator: "\n") + "\n"
    }

    /// Extracts the body armored with `label`; nil if absent or not base64.
    public static func decode(_ text: String, label: String) -> [UInt8]? {
        let begin = "-----BEGIN \(label)-----", end = "-----END \(label)-----"
        guard let b = text.range(of: begin), let e = text.range(of: end, range: b.upperBound..<text.endIndex) else { return nil }
        let b64 = text[b.upperBound..<e.lowerBound].filter { !$0.isWhitespace }
        guard let data = Data(base64Encoded: String(b64)) else { return nil }
        return [UInt8](data)
    }
}
