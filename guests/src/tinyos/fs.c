/*
 * fs.c - TinyFS, a read-only file system that fits in one directory sector.
 *
 * Disk layout (sector = 512 bytes; written by sandbox/guestbuild.py), read
 * through disk.c from whichever disk tinyos found:
 *   LBA 1, the directory:
 *     offset 0   "TINYFS01"                  magic
 *     offset 8   u32 number of files (at most 15)
 *     offset 12  u32 reserved (0)
 *     offset 16  15 entries of 32 bytes: name[24] (NUL-padded), u32 first
 *                sector, u32 size in bytes
 *   each file: contiguous sectors starting at its first sector.
 */
#include "string.h"
#include "tinyos.h"

#define DIRECTORY_LBA 1
#define MAX_FILES 15

static enum fs_status status = FS_NO_DISK;
static struct tinyfs_file files[MAX_FILES];
static int count;

enum fs_status fs_mount(void)
{
    static uint8_t sector[512];

    count = 0;
    if (!disk_present())
        return status = FS_NO_DISK;
    if (disk_read(DIRECTORY_LBA, sector) != 0)
        return status = FS_READ_ERROR;
    if (memcmp(sector, "TINYFS01", 8) != 0)
        return status = FS_NOT_FORMATTED;
    uint32_t n;
    memcpy(&n, sector + 8, 4);
    count = n > MAX_FILES ? MAX_FILES : (int)n;
    memcpy(files, sector + 16, count * sizeof(files[0]));
    for (int i = 0; i < count; i++)
        files[i].name[sizeof(files[i].name) - 1] = 0;     /* never trust the disk */
    return status = FS_MOUNTED;
}

enum fs_status fs_status(void)
{
    return status;
}

int fs_count(void)
{
    return count;
}

const struct tinyfs_file *fs_file(int index)
{
    return index >= 0 && index < count ? &files[index] : 0;
}

const struct tinyfs_file *fs_find(const char *name)
{
    for (int i = 0; i < count; i++)
        if (strcmp(files[i].name, name) == 0)
            return &files[i];
    return 0;
}

int fs_read(const struct tinyfs_file *file, void (*emit)(char))
{
    static uint8_t sector[512];

    for (uint32_t done = 0; done < file->size; done += 512) {
        if (disk_read(file->lba + done / 512, sector) != 0)
            return -1;
        uint32_t n = file->size - done < 512 ? file->size - done : 512;
        for (uint32_t i = 0; i < n; i++)
            emit((char)sector[i]);
    }
    return 0;
}
