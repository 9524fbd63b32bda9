namespace Peft.Onnx.Core.Configs;

/// <summary>
/// A learned absolute position table (a position embedding with one row per position): a sequence longer than
/// <see cref="Positions"/> cannot be computed (transformers fails with an index error in the middle of the forward).
/// Families with rotary, ALiBi or relative-bucket positions have none: transformers runs them at any length. The virtual tokens of a soft prompt or prefix on a decoder-only model
/// take the first positions, as PEFT's forward gives them.
/// </summary>
/// <param name="Positions">How many positions the table covers (rows a family keeps as an offset are not positions).</param>
/// <param name="Key">The config.json key that sets it.</param>
/// <param name="SourcePath">The config.json it was read from.</param>
public sealed record PositionTable(int Positions, string Key, string SourcePath)
{
    /// <summary>
    /// Refuses, before any compute, sequences of <paramref name="tokens"/> tokens (plus the adapter's
    /// <paramref name="virtualTokens"/>) that need more positions than the table has.
    /// </summary>
    /// <param name="what">What holds the sequences, for the message (a file, an argument).</param>
    public void Check(long tokens, int virtualTokens, string what)
    {
        if (tokens + virtualTokens <= Positions) return;
        var need = virtualTokens == 0
            ? $"sequences of {tokens} tokens"
            : $"sequences of {tokens} tokens plus the adapter's {virtualTokens} virtual tokens ({tokens + virtualTokens} positions)";
        throw new PeftOnnxException($"{what}: {need} do not fit the model: {SourcePath} has {Key} = {Positions} (a learned position table has no row beyond it); "
            + $"use at most {Math.Max(0, Positions - virtualTokens)} tokens");
    }

    /// <summary>
    /// New tokens a generation can add until the sequence (virtual tokens, prompt, new tokens) fills the table, at
    /// most <paramref name="maxNewTokens"/>: the rule the Runtime's generator stops by, so two generators compared
    /// on one prompt stop at the same length.
    /// </summary>
    public int NewTokensThatFit(long promptTokens, int virtualTokens, int maxNewTokens) =>
        (int)Math.Clamp(Positions - virtualTokens - promptTokens, 0, maxNewTokens);
}
