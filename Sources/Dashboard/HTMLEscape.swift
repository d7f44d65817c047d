/// Text made safe to place in HTML, in an element or a quoted attribute: `&`, `<`, `>`, `"` and
/// `'` become character references. Everything the server renders goes through it; the page's
/// script writes data with `textContent`, which the browser never parses as HTML.
enum HTMLEscape {
    static func text(_ value: String) -> String {
        var out = ""
        out.reserveCapacity(value.utf8.count)
        for character in value {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(character)
            }
        }
        return out
    }
}
