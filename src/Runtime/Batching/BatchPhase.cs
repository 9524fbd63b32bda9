namespace Peft.Onnx.Runtime.Batching;

/// <summary>Where a continuous batch's thread spends its time (see <see cref="BatchTimings"/>).</summary>
public enum BatchPhase
{
    /// <summary>Checking and tokenizing a request, creating its row.</summary>
    Add,
    /// <summary>Running joining rows' prompts through the graph.</summary>
    Prefill,
    /// <summary>Copying prefilled or cached prompt caches into the batch cache.</summary>
    Join,
    /// <summary>Building a step's inputs (ids, mask, positions) and binding them.</summary>
    Bind,
    /// <summary>The graph's decode run for every row.</summary>
    Decode,
    /// <summary>Choosing each row's next token from its logits.</summary>
    Choose,
    /// <summary>Dropping finished rows and trimming padding.</summary>
    Leave,
    /// <summary>Handing tokens to the requests (the server's side).</summary>
    Deliver,
}
