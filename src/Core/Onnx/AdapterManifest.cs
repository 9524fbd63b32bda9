using System.Text.Json;
using System.Text.Json.Nodes;

namespace Peft.Onnx.Core.Onnx;

/// <summary>
/// adapters.json of a multi-adapter export: the adapters the graph holds, in the order of their
/// <see cref="CausalLmContract.AdapterIndex"/> values.
/// </summary>
public sealed record AdapterManifest(IReadOnlyList<AdapterManifestEntry> Adapters)
{
    public const string FileName = "adapters.json";

    /// <summary>
    /// The stacked tensors in the data file (<see cref="AdapterStackTensor"/>), what adapters added at run time extend;
    /// empty in manifests written before exports recorded them.
    /// </summary>
    public IReadOnlyList<AdapterStackTensor> Stacks { get; init; } = [];

    /// <summary>
    /// The float32 base weights [in, out] of the modules with a DoRA stack, where the data file holds them: what a DoRA
    /// adapter added at run time computes its factor from (empty in quantized exports, whose weights are not float).
    /// </summary>
    public IReadOnlyList<AdapterStackTensor> BaseWeights { get; init; } = [];

    /// <summary>How the LoRA stacks hold A and B ("lora_layout"); manifests that do not say are of the gather layout.</summary>
    public LoraStackLayout LoraLayout { get; init; } = LoraStackLayout.Gather;

    /// <summary>The row layout's index tables ("lora_row_tables"): per table stack, the modules whose LoRA rows it indexes.</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<string>> RowTableUsers { get; init; } = new Dictionary<string, IReadOnlyList<string>>();

    /// <summary>The index of <paramref name="name"/> (null = the base: -1); an unknown name is refused, listing the known ones.</summary>
    public long IndexOf(string? name)
    {
        if (name == null) return -1;
        for (int i = 0; i < Adapters.Count; i++)
            if (string.Equals(Adapters[i].Name, name, StringComparison.Ordinal)) return i;
        var known = Adapters.Count == 0 ? "none" : string.Join(", ", Adapters.Select(a => a.Name));
        throw new PeftOnnxException($"unknown adapter '{name}' (this export has: {known}; omit the adapter for the base)");
    }

    /// <summary>Reads dir/adapters.json; null when the folder has none (a single-adapter or base export).</summary>
    public static AdapterManifest? Load(string dir)
    {
        var path = Path.Combine(dir, FileName);
        if (!File.Exists(path)) return null;
        JsonNode? root;
        try { root = JsonNode.Parse(File.ReadAllText(path)); }
        catch (JsonException e) { throw new PeftOnnxException($"{path}: not valid JSON ({e.Message})"); }
        if (root?["adapters"] is not JsonArray items) throw new PeftOnnxException($"{path}: expected an object with an \"adapters\" array");
        var entries = new List<AdapterManifestEntry>();
        foreach (var item in items)
        {
            string? name = item?["name"]?.GetValue<string>(), method = item?["method"]?.GetValue<string>();
            if (name == null || method == null) throw new PeftOnnxException($"{path}: every adapter needs \"name\" and \"method\" strings");
            entries.Add(new AdapterManifestEntry(name, method, item!["rank"]?.GetValue<int>() ?? 0, item["parameters"]?.GetValue<long>() ?? 0,
                item["source_config"]?.DeepClone() as JsonObject));
        }
        return new AdapterManifest(entries)
        {
            Stacks = ReadStacks(root["stacks"], path, "stacks"), BaseWeights = ReadStacks(root["base_weights"], path, "base_weights"),
            LoraLayout = ReadLayout(root["lora_layout"], path), RowTableUsers = ReadTables(root["lora_row_tables"], path),
        };
    }

    private static LoraStackLayout ReadLayout(JsonNode? node, string path) => node?.GetValue<string>() switch
    {
        null => LoraStackLayout.Gather,
        "rows" => LoraStackLayout.Rows,
        "gather" => LoraStackLayout.Gather,
        var other => throw new PeftOnnxException($"{path}: \"lora_layout\" is '{other}', expected \"rows\" or \"gather\""),
    };

    private static Dictionary<string, IReadOnlyList<string>> ReadTables(JsonNode? node, string path)
    {
        var result = new Dictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal);
        if (node == null) return result;
        if (node is not JsonObject masks) throw new PeftOnnxException($"{path}: \"lora_row_tables\" must be an object of table name to module paths");
        foreach (var (mask, users) in masks)
            result[mask] = users is JsonArray a && a.All(u => u is JsonValue v && v.TryGetValue<string>(out _))
                ? a.Select(u => u!.GetValue<string>()).ToList()
                : throw new PeftOnnxException($"{path}: \"lora_row_tables\".\"{mask}\" must be an array of module paths");
        return result;
    }

    private static List<AdapterStackTensor> ReadStacks(JsonNode? node, string path, string key)
    {
        var result = new List<AdapterStackTensor>();
        if (node == null) return result;
        if (node is not JsonArray items) throw new PeftOnnxException($"{path}: \"{key}\" must be an array");
        foreach (var item in items)
        {
            try
            {
                var dims = item!["dims"]!.AsArray().Select(d => d!.GetValue<long>()).ToArray();
                var t = new AdapterStackTensor(item["name"]!.GetValue<string>(), item["location"]!.GetValue<string>(),
                    item["offset"]!.GetValue<long>(), item["length"]!.GetValue<long>(), dims);
                if (t.Offset < 0 || dims.Length < 2 || dims.Any(d => d <= 0) || t.Length != t.ElementCount * sizeof(float))
                    throw new PeftOnnxException($"{path}: {key} '{t.Name}' has offset {t.Offset}, length {t.Length} and dims [{string.Join(", ", dims)}] (expected float32 [slots, ...] of that length)");
                result.Add(t);
            }
            catch (Exception e) when (e is NullReferenceException or InvalidOperationException or FormatException)
            {
                throw new PeftOnnxException($"{path}: every entry of \"{key}\" needs \"name\", \"location\", \"offset\", \"length\" and \"dims\"");
            }
        }
        return result;
    }

    public string ToJson()
    {
        var items = new JsonArray();
        for (int i = 0; i < Adapters.Count; i++)
        {
            var a = Adapters[i];
            items.Add(new JsonObject
            {
                ["name"] = a.Name, ["index"] = i, ["method"] = a.Method, ["rank"] = a.Rank, ["parameters"] = a.Parameters,
                ["source_config"] = a.SourceConfig?.DeepClone(),
            });
        }
        var root = new JsonObject { ["adapters"] = items };
        if (Stacks.Count > 0)
        {
            root["lora_layout"] = LoraLayout == LoraStackLayout.Rows ? "rows" : "gather";
            if (RowTableUsers.Count > 0)
                root["lora_row_tables"] = new JsonObject(RowTableUsers.OrderBy(m => m.Key, StringComparer.Ordinal)
                    .Select(m => KeyValuePair.Create(m.Key, (JsonNode?)new JsonArray(m.Value.Select(u => (JsonNode)JsonValue.Create(u)!).ToArray()))));
            root["stacks"] = Located(Stacks);
        }
        if (BaseWeights.Count > 0) root["base_weights"] = Located(BaseWeights);
        return root.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    private static JsonArray Located(IReadOnlyList<AdapterStackTensor> tensors) =>
        new(tensors.Select(t => (JsonNode)new JsonObject
        {
            ["name"] = t.Name, ["location"] = t.Location, ["offset"] = t.Offset, ["length"] = t.Length,
            ["dims"] = new JsonArray(t.Dims.Select(d => (JsonNode)JsonValue.Create(d)).ToArray()),
        }).ToArray());

    /// <summary>A plain identifier (letters, digits, '_', '-', '.', not starting with a digit): what an adapter may be named.</summary>
    public static bool IsValidName(string name) =>
        name.Length > 0 && !char.IsAsciiDigit(name[0]) && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.');
}

/// <summary>
/// One adapter of <see cref="AdapterManifest"/>: its name, PEFT method, largest rank (0 for IA3; the number of virtual
/// tokens for prompt tuning, p-tuning and prefix tuning), trained parameter count and adapter_config.json.
/// </summary>
public sealed record AdapterManifestEntry(string Name, string Method, int Rank, long Parameters, JsonObject? SourceConfig)
{
    /// <summary>Virtual tokens a row of this adapter gets before its own (prompt tuning, p-tuning, prefix tuning), else 0.</summary>
    public int VirtualTokens =>
        Method is Peft.PromptTuningConfig.Type or Peft.PromptEncoderConfig.Type or Peft.PrefixTuningConfig.Type ? Rank : 0;
}
