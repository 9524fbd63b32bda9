using System.Diagnostics;
using System.Text.Json;
using Microsoft.ML.OnnxRuntimeGenAI;

/// <summary>Requests with one LoRA adapter each through ORT GenAI's Adapters API (see Program's usage line).</summary>
internal static class AdapterRequests
{
    public static int Run(string[] args)
    {
        if (args.Length < 5)
        {
            Console.Error.WriteLine("usage: GenAiBaseline --adapters DIR PROMPT_LENGTH NEW_TOKENS REPEATS FILE.onnx_adapter...");
            return 2;
        }
        try
        {
            string dir = args[0];
            int promptLength = int.Parse(args[1]), newTokens = int.Parse(args[2]), repeats = int.Parse(args[3]);
            var files = args[4..];
            using var model = new Model(dir);
            using var adapters = new Adapters(model);
            for (int i = 0; i < files.Length; i++) adapters.LoadAdapter(files[i], Name(i));
            var vocab = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "genai_config.json"))).RootElement
                .GetProperty("model").GetProperty("vocab_size").GetInt32();
            using var self = Process.GetCurrentProcess();
            double best = double.MaxValue, bestCpu = 0;
            int bestTokens = 0;
            var sequences = new List<int[]>();
            var firstLogits = new List<float[]>();
            for (int rep = 0; rep < repeats + 1; rep++) // the first round warms up
            {
                self.Refresh();
                var cpu = self.TotalProcessorTime;
                var clock = Stopwatch.StartNew();
                int tokens = 0;
                var roundSequences = new List<int[]>();
                var roundLogits = new List<float[]>();
                for (int r = 0; r < files.Length; r++)
                {
                    using var p = new GeneratorParams(model);
                    p.SetSearchOption("max_length", promptLength + newTokens);
                    p.SetSearchOption("min_length", promptLength + newTokens);
                    p.SetSearchOption("batch_size", 1);
                    p.SetSearchOption("do_sample", false);
                    using var g = new Generator(model, p);
                    g.SetActiveAdapter(adapters, Name(r));
                    g.AppendTokens(Prompt(r, promptLength, vocab));
                    if (rep == 0)
                    {
                        using var logits = g.GetOutput("logits");
                        var all = logits.GetData<float>().ToArray();
                        roundLogits.Add(all[^vocab..]);
                    }
                    // max_length = min_length = prompt + new tokens: every request produces exactly newTokens tokens
                    int produced = 0;
                    while (!g.IsDone()) { g.GenerateNextToken(); produced++; }
                    tokens += produced;
                    roundSequences.Add(g.GetSequence(0).ToArray()[promptLength..]);
                }
                double seconds = clock.Elapsed.TotalSeconds;
                self.Refresh();
                if (rep == 0) { sequences = roundSequences; firstLogits = roundLogits; }
                if ((rep > 0 || repeats == 0) && seconds < best) { best = seconds; bestTokens = tokens; bestCpu = (self.TotalProcessorTime - cpu).TotalSeconds; }
            }
            Console.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object>
            {
                ["requests"] = files.Length,
                ["prompt_length"] = promptLength,
                ["new_tokens"] = newTokens,
                ["seconds"] = Math.Round(best, 6),
                ["tokens_per_second"] = Math.Round(bestTokens / best, 3),
                ["cpu_seconds"] = Math.Round(bestCpu, 6),
                ["sequences"] = sequences,
                ["first_logits"] = firstLogits,
            }));
            return 0;
        }
        catch (Exception ex)
        {
            Console.Error.WriteLine($"error: {ex.GetType().Name}: {ex.Message.Split('\n')[0]}");
            return 1;
        }
    }

    private static string Name(int i) => "adapter" + i;

    /// <summary>Request <paramref name="row"/>'s prompt: the bench's deterministic ids (row r of a batch), in [3, vocab).</summary>
    public static int[] Prompt(int row, int length, int vocab) =>
        Enumerable.Range(0, length).Select(i => 3 + (int)(((long)i * 7919 + row * 31 + 11) % Math.Max(1, vocab - 3))).ToArray();
}
