using System.IO.Compression;
using System.Xml.Linq;

namespace Peft.Onnx.Tests.Support;

/// <summary>What a .nupkg declares (its .nuspec) and the files it holds.</summary>
public sealed record PackedPackage(
    string Id, string Version, string Description, string? LicenseExpression, string? Readme, string? RepositoryType,
    IReadOnlyDictionary<string, string> Dependencies, IReadOnlyList<string> Files)
{
    public static PackedPackage Read(string nupkg)
    {
        using var zip = ZipFile.OpenRead(nupkg);
        var nuspec = zip.Entries.Single(e => !e.FullName.Contains('/') && e.FullName.EndsWith(".nuspec", StringComparison.Ordinal));
        XElement metadata;
        using (var stream = nuspec.Open()) metadata = XDocument.Load(stream).Root!.Elements().Single(e => e.Name.LocalName == "metadata");
        string? Value(string name) => metadata.Elements().FirstOrDefault(e => e.Name.LocalName == name)?.Value;
        var license = metadata.Elements().FirstOrDefault(e => e.Name.LocalName == "license" && (string?)e.Attribute("type") == "expression");
        var repository = metadata.Elements().FirstOrDefault(e => e.Name.LocalName == "repository");
        var dependencies = metadata.Descendants().Where(e => e.Name.LocalName == "dependency")
            .ToDictionary(e => (string)e.Attribute("id")!, e => (string)e.Attribute("version")!);
        return new PackedPackage(Value("id")!, Value("version")!, Value("description") ?? "", license?.Value, Value("readme"),
            (string?)repository?.Attribute("type"), dependencies, zip.Entries.Select(e => e.FullName).ToList());
    }
}
