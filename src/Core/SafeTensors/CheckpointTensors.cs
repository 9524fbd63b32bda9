using System.Text.Json;

namespace Peft.Onnx.Core.SafeTensors;

/// <summary>
/// The weights of a Hugging Face checkpoint folder: one model.safetensors, or shards listed in
/// model.safetensors.index.json (its "weight_map" names the shard of each tensor).
/// </summary>
public sealed class CheckpointTensors : ITensorSource
{
    public const string SingleFile = "model.safetensors";
    public const string IndexFile = "model.safetensors.index.json";

    private readonly Dictionary<string, SafeTensorsFile> _byName;
    private readonly List<SafeTensorsFile> _files;

    private CheckpointTensors(List<SafeTensorsFile> files, Dictionary<string, SafeTensorsFile> byName)
    {
        _files = files;
        _byName = byName;
    }

    public IReadOnlyList<SafeTensorsFile> Files => _files;

    public static bool Exists(string dir) =>
        File.Exists(Path.Combine(dir, SingleFile)) || File.Exists(Path.Combine(dir, IndexFile));

    public static CheckpointTensors Open(string dir)
    {
        try { return OpenChecked(dir); }
        catch (PeftOnnxException ex) when (MessageText.HasLineBreak(ex.Message)) { throw MessageText.OneLine(ex); }
    }

    private static CheckpointTensors OpenChecked(string dir)
    {
        var single = Path.Combine(dir, SingleFile);
        var index = Path.Combine(dir, IndexFile);
        if (File.Exists(single))
        {
            var f = SafeTensorsFile.Open(single);
            return new CheckpointTensors([f], f.Entries.ToDictionary(e => e.Name, _ => f));
        }
        if (File.Exists(index)) return OpenSharded(dir, index);
        foreach (var pickle in new[] { "pytorch_model.bin", "pytorch_model.bin.index.json", "model.pt", "model.ckpt" })
        {
            if (File.Exists(Path.Combine(dir, pickle)))
                throw new PeftOnnxException($"{Path.Combine(dir, pickle)}: pickle checkpoints are never loaded (they can run code); convert to safetensors first, e.g. in Python: `model.save_pretrained(dir, safe_serialization=True)`");
        }
        throw new PeftOnnxException($"{dir}: no weights found (expected {SingleFile} or {IndexFile})");
    }

    private static CheckpointTensors OpenSharded(string dir, string indexPath)
    {
        Dictionary<string, string> weightMap;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(indexPath), new JsonDocumentOptions { MaxDepth = 16 });
            if (doc.RootElement.ValueKind != JsonValueKind.Object || !doc.RootElement.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
                throw new PeftOnnxException($"{indexPath}: missing object 'weight_map'");
            weightMap = new Dictionary<string, string>();
            foreach (var p in map.EnumerateObject())
            {
                if (p.Value.ValueKind != JsonValueKind.String) throw new PeftOnnxException($"{indexPath}: weight_map['{p.Name}'] must be a file name");
                weightMap[p.Name] = p.Value.GetString()!;
            }
        }
        catch (JsonException ex) { throw new PeftOnnxException($"{indexPath}: not valid JSON ({ex.Message.Split('\n')[0]})"); }
        catch (InvalidOperationException ex) { throw new PeftOnnxException($"{indexPath}: invalid JSON text ({ex.Message.Split('\n')[0]})"); }

        var files = new List<SafeTensorsFile>();
        var byShard = new Dictionary<string, SafeTensorsFile>();
        var byName = new Dictionary<string, SafeTensorsFile>();
        try
        {
            foreach (var shard in weightMap.Values.Distinct().Order(StringComparer.Ordinal))
            {
                string shardPath;
                try { shardPath = SafePath.Inside(dir, shard, indexPath); }
                catch (ArgumentException) { throw new PeftOnnxException($"{indexPath}: weight_map names an invalid file name {MessageText.Quote(shard)}"); }
                var f = SafeTensorsFile.Open(shardPath);
                files.Add(f);
                byShard[shard] = f;
            }
            foreach (var (name, shard) in weightMap)
            {
                var f = byShard[shard];
                if (!f.Contains(name)) throw new PeftOnnxException($"{indexPath}: weight_map says '{name}' is in {shard}, but that file has no such tensor");
                byName[name] = f;
            }
        }
        catch
        {
            foreach (var f in files) f.Dispose();
            throw;
        }
        return new CheckpointTensors(files, byName);
    }

    public IEnumerable<string> Names => _byName.Keys;
    public bool Contains(string name) => _byName.ContainsKey(name);
    public TensorEntry this[string name] => FileOf(name)[name];
    public ReadOnlySpan<byte> GetBytes(string name) => FileOf(name).GetBytes(name);
    public float[] ReadFloat32(string name) => FileOf(name).ReadFloat32(name);
    public long[] ReadInt64(string name) => FileOf(name).ReadInt64(name);

    public SafeTensorsFile FileOf(string name) => _byName.TryGetValue(name, out var f) ? f
        : throw new PeftOnnxException($"checkpoint has no tensor named '{name}'");

    public void Dispose()
    {
        foreach (var f in _files) f.Dispose();
    }
}
