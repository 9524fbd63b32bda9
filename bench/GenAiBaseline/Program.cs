// genai-baseline DIR PROMPT_LENGTH NEW_TOKENS BATCH [REPEATS]
// Greedy generation with ONNX Runtime GenAI on an exported folder (its genai_config.json); prints one JSON object:
// tokens_per_second (new tokens over the whole batch / decode+prefill seconds), ttft_seconds (first token), seconds,
// cpu_seconds (this process's CPU time over that run: the work done, whatever share of the cores it was given).
// genai-baseline --adapters DIR PROMPT_LENGTH NEW_TOKENS REPEATS FILE.onnx_adapter...
// One request per adapter file through GenAI's Adapters API (LoadAdapter, then one generator per request with
// SetActiveAdapter: GenAI activates one adapter per generator), the requests one after another; prints tokens_per_second
// (all requests' new tokens over their total seconds, best repeat), cpu_seconds, each request's new tokens
// (sequences) and its first step's last-position logits (first_logits).
using System.Diagnostics;
using System.Text.Json;
using Microsoft.ML.OnnxRuntimeGenAI;

if (args.Length > 0 && args[0] == "--adapters") return AdapterRequests.Run(args[1..]);
if (args.Length < 4)
{
    Console.Error.WriteLine("usage: GenAiBaseline DIR PROMPT_LENGTH NEW_TOKENS BATCH [REPEATS]");
    return 2;
}
try
{
    string dir = args[0];
    int promptLength = int.Parse(args[1]), newTokens = int.Parse(args[2]), batch = int.Parse(args[3]);
    int repeats = args.Length > 4 ? int.Parse(args[4]) : 1;
    using var model = new Model(dir);
    var vocab = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "genai_config.json"))).RootElement
        .GetProperty("model").GetProperty("vocab_size").GetInt32();
    var tokens = new int[batch * promptLength];
    for (int i = 0; i < tokens.Length; i++) tokens[i] = 3 + (i * 7919 + i / promptLength * 31) % Math.Max(1, vocab - 3);

    double best = double.MaxValue, bestTtft = 0, bestCpu = 0;
    using var self = Process.GetCurrentProcess();
    int produced = 0;
    for (int rep = 0; rep < repeats + 1; rep++) // first run warms up
    {
        using var p = new GeneratorParams(model);
        p.SetSearchOption("max_length", promptLength + newTokens);
        p.SetSearchOption("min_length", promptLength + newTokens);
        p.SetSearchOption("batch_size", batch);
        p.SetSearchOption("do_sample", false);
        self.Refresh();
        var cpu = self.TotalProcessorTime;
        var clock = Stopwatch.StartNew();
        using var g = new Generator(model, p);
        g.AppendTokens(tokens);
        double ttft = clock.Elapsed.TotalSeconds;
        int steps = 1;
        while (!g.IsDone() && steps < newTokens) { g.GenerateNextToken(); steps++; }
        double seconds = clock.Elapsed.TotalSeconds;
        self.Refresh();
        if (rep > 0 && seconds < best) { best = seconds; bestTtft = ttft; produced = steps * batch; bestCpu = (self.TotalProcessorTime - cpu).TotalSeconds; }
    }
    Console.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object>
    {
        ["batch"] = batch,
        ["prompt_length"] = promptLength,
        ["new_tokens"] = produced / batch,
        ["seconds"] = Math.Round(best, 6),
        ["ttft_seconds"] = Math.Round(bestTtft, 6),
        ["tokens_per_second"] = Math.Round(produced / best, 3),
        ["cpu_seconds"] = Math.Round(bestCpu, 6),
    }));
    return 0;
}
catch (Exception ex)
{
    Console.Error.WriteLine($"error: {ex.GetType().Name}: {ex.Message.Split('\n')[0]}");
    return 1;
}
