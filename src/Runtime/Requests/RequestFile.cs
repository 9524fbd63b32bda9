using System.Text.Json;
using Peft.Onnx.Core;

namespace Peft.Onnx.Runtime.Requests;

/// <summary>
/// Reads a requests file: one JSON object a line, {"id": string, "input_ids": [ints] or "prompt": string,
/// "adapter": name or null, "max_new_tokens": int}; blank lines are skipped.
/// </summary>
public static class RequestFile
{
    public static IReadOnlyList<RequestLine> Read(string path)
    {
        if (!File.Exists(path)) throw new PeftOnnxException($"{path}: requests file not found");
        var result = new List<RequestLine>();
        var ids = new HashSet<string>(StringComparer.Ordinal);
        int number = 0;
        foreach (var text in File.ReadLines(path))
        {
            number++;
            if (string.IsNullOrWhiteSpace(text)) continue;
            var line = Parse(text, $"{path}:{number}");
            if (!ids.Add(line.Id)) throw new PeftOnnxException($"{path}:{number}: id '{line.Id}' was used by an earlier request");
            result.Add(line);
        }
        if (result.Count == 0) throw new PeftOnnxException($"{path}: holds no requests (expected one JSON object a line)");
        return result;
    }

    private static RequestLine Parse(string text, string where)
    {
        JsonElement root;
        try { root = JsonDocument.Parse(text).RootElement; }
        catch (JsonException e) { throw new PeftOnnxException($"{where}: not valid JSON ({e.Message})"); }
        if (root.ValueKind != JsonValueKind.Object) throw new PeftOnnxException($"{where}: expected a JSON object");
        foreach (var p in root.EnumerateObject())
            if (p.Name is not ("id" or "input_ids" or "prompt" or "adapter" or "max_new_tokens"))
                throw new PeftOnnxException($"{where}: unknown key '{p.Name}' (expected id, input_ids or prompt, adapter, max_new_tokens)");
        var id = root.TryGetProperty("id", out var idValue) && idValue.ValueKind == JsonValueKind.String
            ? idValue.GetString()! : throw new PeftOnnxException($"{where}: \"id\" must be a string");
        bool hasIds = root.TryGetProperty("input_ids", out var idsValue), hasPrompt = root.TryGetProperty("prompt", out var promptValue);
        if (hasIds == hasPrompt) throw new PeftOnnxException($"{where}: give exactly one of \"input_ids\" (ints) or \"prompt\" (string)");
        int[]? inputIds = null;
        if (hasIds)
        {
            if (idsValue.ValueKind != JsonValueKind.Array || idsValue.EnumerateArray().Any(v => v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out _)))
                throw new PeftOnnxException($"{where}: \"input_ids\" must be an array of integer token ids");
            inputIds = idsValue.EnumerateArray().Select(v => v.GetInt32()).ToArray();
        }
        if (hasPrompt && promptValue.ValueKind != JsonValueKind.String) throw new PeftOnnxException($"{where}: \"prompt\" must be a string");
        string? adapter = null;
        if (root.TryGetProperty("adapter", out var adapterValue) && adapterValue.ValueKind != JsonValueKind.Null)
            adapter = adapterValue.ValueKind == JsonValueKind.String ? adapterValue.GetString() : throw new PeftOnnxException($"{where}: \"adapter\" must be a name or null");
        int? maxNewTokens = null;
        if (root.TryGetProperty("max_new_tokens", out var maxValue) && maxValue.ValueKind != JsonValueKind.Null)
            maxNewTokens = maxValue.ValueKind == JsonValueKind.Number && maxValue.TryGetInt32(out var m) && m >= 1
                ? m : throw new PeftOnnxException($"{where}: \"max_new_tokens\" must be a positive integer");
        return new RequestLine(id, inputIds, hasPrompt ? promptValue.GetString() : null, adapter, maxNewTokens);
    }
}
