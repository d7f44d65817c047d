import Foundation
import MeshIdentity
import Testing

/// A trust directory that cannot be listed is an error, not "trust nobody" (issue: fail closed).
@Suite struct TrustStoreLoadTests {
    @Test func aMissingTrustDirectoryTrustsNobody() throws {
        let dir = TempDir()
        #expect(try TrustStore.load(fromDirectory: dir.path + "/trust").anchors.isEmpty)
    }

    @Test func anUnlistableTrustDirectoryThrowsWithTheFix() throws {
        // A file where the directory should be cannot be listed, even by root (chmod would not stop root).
        let dir = TempDir()
        let path = dir.path + "/trust"
        #expect(FileManager.default.createFile(atPath: path, contents: Data("not a directory".utf8)))
        #expect {
            _ = try TrustStore.load(fromDirectory: path)
        } throws: { error in
            "\(error)".contains(path) && "\(error)".contains("cannot be listed")
        }
    }
}
