import Foundation

/// Finds the numbers in a request that no integer parameter can hold.
///
/// Foundation's `JSONDecoder` (swift-corelibs, Linux) reports a number such as `1e30`,
/// `1.5` or `100000000000000000000000` decoded as an `Int` as "The given data was not valid
/// JSON", with no coding path; the control API promises to name the parameter (Protocol.md §7).
/// Only called after such a failure, so every hit is a value that made the decoder give up.
enum OversizedNumberProbe {
    /// Dotted paths under `params` (e.g. `settings.downtimeLimitMs`) of numbers that are not
    /// whole or lie outside Int64, with the number as written.
    static func find(in line: Data) -> [(path: String, value: String)] {
        // Only refines an error already thrown: a line that does not parse keeps that error as it is.
        guard let object = try? JSONSerialization.jsonObject(with: line) as? [String: Any], let params = object["params"] else { return [] }
        var hits: [(path: String, value: String)] = []
        func walk(_ value: Any, _ path: String) {
            switch value {
            case let dictionary as [String: Any]:
                for key in dictionary.keys.sorted() { walk(dictionary[key]!, path.isEmpty ? key : path + "." + key) }
            case let array as [Any]:
                for (index, element) in array.enumerated() { walk(element, path + "[\(index)]") }
            case let number as NSNumber where !(number is Bool):
                let double = number.doubleValue
                // Int64's range as doubles: the upper bound 2^63 itself is already out of range.
                if double.rounded() != double || double >= 9.223_372_036_854_775_808e18 || double < -9.223_372_036_854_775_808e18 {
                    hits.append((path, number.description))
                }
            default:
                break
            }
        }
        walk(params, "")
        return hits
    }
}
