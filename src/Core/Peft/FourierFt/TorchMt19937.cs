namespace Peft.Onnx.Core.Peft;

/// <summary>
/// torch's CPU generator after torch.Generator().manual_seed(seed): the standard 32-bit Mersenne Twister (MT19937),
/// seeded with the low 32 bits of the seed; <see cref="Next"/> is the generator's random().
/// </summary>
public sealed class TorchMt19937
{
    private const int N = 624, M = 397;
    private readonly uint[] _state = new uint[N];
    private int _index;

    public TorchMt19937(ulong seed)
    {
        _state[0] = (uint)seed;
        for (int i = 1; i < N; i++)
            _state[i] = unchecked(1812433253u * (_state[i - 1] ^ (_state[i - 1] >> 30)) + (uint)i);
        _index = N;
    }

    public uint Next()
    {
        if (_index >= N) Twist();
        uint y = _state[_index++];
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c5680u;
        y ^= (y << 15) & 0xefc60000u;
        y ^= y >> 18;
        return y;
    }

    private void Twist()
    {
        for (int i = 0; i < N; i++)
        {
            uint y = (_state[i] & 0x80000000u) | (_state[(i + 1) % N] & 0x7fffffffu);
            uint next = _state[(i + M) % N] ^ (y >> 1);
            if ((y & 1) != 0) next ^= 0x9908b0dfu;
            _state[i] = next;
        }
        _index = 0;
    }
}
